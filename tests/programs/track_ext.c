/* A CPython extension module for leaktrace.track() and the pytest plugin tests: functions
 * that leak, keep or free native memory. The tests find lines by the @leak: markers. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>

static void *volatile kept;          /* a global root: still reachable */
static void *volatile once;          /* first-call initialisation, kept for the process */

/* Returns the block without storing it anywhere: once the caller drops it, it is lost. */
__attribute__((noinline)) static void *make_lost(size_t n)
{
    void *p = malloc(n); /* @leak:lost */
    if (p) memset(p, 0x5a, n);
    return p;
}

static PyObject *leak(PyObject *self, PyObject *arg)
{
    (void)self;
    size_t n = PyLong_AsSize_t(arg);
    if (n == (size_t)-1 && PyErr_Occurred()) return NULL;
    void *volatile p = make_lost(n);
    p = NULL; /* the only pointer is gone */
    (void)p;
    Py_RETURN_NONE;
}

static PyObject *keep(PyObject *self, PyObject *arg)
{
    (void)self;
    size_t n = PyLong_AsSize_t(arg);
    if (n == (size_t)-1 && PyErr_Occurred()) return NULL;
    free(kept);
    kept = malloc(n); /* @leak:kept */
    Py_RETURN_NONE;
}

static PyObject *no_leak(PyObject *self, PyObject *arg)
{
    (void)self;
    size_t n = PyLong_AsSize_t(arg);
    if (n == (size_t)-1 && PyErr_Occurred()) return NULL;
    char *volatile p = malloc(n);
    if (p) p[0] = 1;
    free(p);
    Py_RETURN_NONE;
}

/* Loses 100 bytes on its first call only: one-time initialisation done badly. */
static PyObject *init_once(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    if (!once) {
        void *volatile first = malloc(100); /* @leak:first_call */
        first = NULL;
        (void)first;
        once = (void *)1;
    }
    Py_RETURN_NONE;
}

/* init_once, then loses n bytes on every call. */
static PyObject *init_then_leak(PyObject *self, PyObject *arg)
{
    PyObject *none = init_once(self, NULL);
    Py_XDECREF(none);
    return leak(self, arg);
}

/* A reference leak: a new bytes object of n bytes whose reference is never given back, the
 * commonest leak of an extension. Python allocates it with PyObject_Malloc: under pymalloc
 * (objects up to 512 bytes) no malloc call happens; with PYTHONMALLOC=malloc it is one. */
__attribute__((noinline)) static PyObject *make_object(Py_ssize_t n)
{
    PyObject *o = PyBytes_FromStringAndSize(NULL, n); /* @leak:object */
    __asm__ volatile("" ::: "memory"); /* not a tail call: this frame stays in the stack */
    return o;
}

static PyObject *leak_object(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n < 0 && PyErr_Occurred()) return NULL;
    if (!make_object(n)) return NULL; /* the reference is dropped on the floor */
    Py_RETURN_NONE;
}

/* PyMem_Malloc(n), lost. */
__attribute__((noinline)) static void *make_pymem(size_t n)
{
    void *p = PyMem_Malloc(n); /* @leak:pymem */
    if (p) memset(p, 0x5a, n);
    return p;
}

static PyObject *leak_pymem(PyObject *self, PyObject *arg)
{
    (void)self;
    size_t n = PyLong_AsSize_t(arg);
    if (n == (size_t)-1 && PyErr_Occurred()) return NULL;
    void *volatile p = make_pymem(n);
    p = NULL;
    (void)p;
    Py_RETURN_NONE;
}

/* Clears 64 KiB of stack below the caller's frame: pointers left in dead frames of earlier
 * calls (the allocator's, the shim's) would make a lost block look reachable, since the scan
 * of the calling thread's stack is conservative. The test calls it at the depth of the leaking
 * calls, as the C tests' scrub_stack() does. */
__attribute__((noinline)) static PyObject *scrub(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    volatile char area[64 * 1024];
    memset((char *)area, 0, sizeof area);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    { "scrub", scrub, METH_NOARGS, "clear the dead stack below the caller" },
    { "leak", leak, METH_O, "malloc(n) and lose it" },
    { "keep", keep, METH_O, "malloc(n) kept in a global" },
    { "no_leak", no_leak, METH_O, "malloc(n) and free it" },
    { "init_once", init_once, METH_NOARGS, "lose 100 bytes on the first call only" },
    { "init_then_leak", init_then_leak, METH_O, "lose 100 bytes once, then n per call" },
    { "leak_object", leak_object, METH_O, "a bytes object of n bytes whose reference is lost" },
    { "leak_pymem", leak_pymem, METH_O, "PyMem_Malloc(n) and lose it" },
    { NULL, NULL, 0, NULL },
};

static struct PyModuleDef module = { PyModuleDef_HEAD_INIT, "lt_track_ext", NULL, -1, methods,
                                     NULL, NULL, NULL, NULL };

PyMODINIT_FUNC PyInit_lt_track_ext(void) { return PyModule_Create(&module); }
