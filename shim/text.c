/* Small text formatting for code that must not call snprintf (not async-signal-safe, and it
 * may allocate): file names, notify lines, the control socket's JSON answers. Each function
 * appends to dst, never writes at or past end, and returns the new end of the text. */
#include "shim.h"

char *lt_put_str(char *dst, char *end, const char *s)
{
    while (*s && dst < end) *dst++ = *s++;
    return dst;
}

char *lt_put_uint(char *dst, char *end, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do tmp[n++] = (char)('0' + v % 10); while ((v /= 10));
    while (n && dst < end) *dst++ = tmp[--n];
    return dst;
}

char *lt_put_json_str(char *dst, char *end, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    if (dst < end) *dst++ = '"';
    for (; *s && dst + 6 < end; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            *dst++ = '\\';
            *dst++ = (char)c;
        } else if (c < 0x20) {
            dst = lt_put_str(dst, end, "\\u00");
            *dst++ = hex[c >> 4];
            *dst++ = hex[c & 15];
        } else {
            *dst++ = (char)c;
        }
    }
    if (dst < end) *dst++ = '"';
    return dst;
}

char *lt_put_json_uint(char *dst, char *end, const char *key, uint64_t v)
{
    dst = lt_put_str(dst, end, ",\"");
    dst = lt_put_str(dst, end, key);
    dst = lt_put_str(dst, end, "\":");
    return lt_put_uint(dst, end, v);
}

char *lt_put_json_bool(char *dst, char *end, const char *key, bool v)
{
    dst = lt_put_str(dst, end, ",\"");
    dst = lt_put_str(dst, end, key);
    dst = lt_put_str(dst, end, "\":");
    return lt_put_str(dst, end, v ? "true" : "false");
}

char *lt_put_json_text(char *dst, char *end, const char *key, const char *value)
{
    dst = lt_put_str(dst, end, ",\"");
    dst = lt_put_str(dst, end, key);
    dst = lt_put_str(dst, end, "\":");
    return lt_put_json_str(dst, end, value);
}
