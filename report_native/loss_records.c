/* The text report's loss records written in C (render/column_text.py, _NativeText): each
 * record's head, from texts the caller made once (sentences, kind prefixes, allocation and
 * growth parts) and the numbers formatted here, then its backtrace's lines. Python spends
 * several microseconds a record on the same text at a million records. The text is
 * render/text.py's, byte for byte (tests/test_report_native.py compares them).
 * No shared mutable state: the caller's arrays only. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "report_native.h"

enum { FOUND_KEPT = 256 }; /* frames whose address index is kept between the two walks */
enum { PREFETCH_AHEAD = 8 }; /* records whose stacks are fetched ahead: a cache miss each */

struct out {
    uint8_t *at, *end;
    int full; /* set when a write did not fit: the caller gives more room */
};

static void put(struct out *o, const void *from, size_t length)
{
    if (o->full || (size_t)(o->end - o->at) < length) {
        o->full = 1;
        return;
    }
    memcpy(o->at, from, length);
    o->at += length;
}

static void put_text(struct out *o, const struct lt_texts *t, int64_t index)
{
    if (index < t->count)
        put(o, t->bytes + t->starts[index], (size_t)t->lengths[index]);
    else
        put(o, t->more_bytes + t->more_starts[index - t->count],
            (size_t)t->more_lengths[index - t->count]);
}

/* n with a comma every three digits, as Python's f"{n:,}" (n >= 0). */
static void put_grouped(struct out *o, int64_t n)
{
    char text[32];
    int at = (int)sizeof text, digits = 0;
    uint64_t rest = (uint64_t)n;
    do {
        if (digits > 0 && digits % 3 == 0)
            text[--at] = ',';
        text[--at] = (char)('0' + rest % 10);
        rest /= 10;
        digits++;
    } while (rest > 0);
    put(o, text + at, sizeof text - (size_t)at);
}

/* "; oldest live block AGE s old at capture", AGE as f"{age:.3f}" (|age| < 1e15): rounded
 * half to even on the exact value, as Python and printf round. age * 1000 is exact in a long
 * double of 64 bits (53 bits times 1000's 7); printf, where long double is not that wide,
 * costs about half a second a million records. */
static void put_age(struct out *o, double age)
{
    static const char before[] = "; oldest live block ", after[] = " s old at capture";
    put(o, before, sizeof before - 1);
#if LDBL_MANT_DIG >= 64
    if (signbit(age))
        put(o, "-", 1);
    long double thousandths = (long double)fabs(age) * 1000.0L;
    uint64_t whole = (uint64_t)thousandths;
    long double fraction = thousandths - (long double)whole;
    if (fraction > 0.5L || (fraction == 0.5L && whole % 2 == 1))
        whole++;
    char text[32];
    int at = (int)sizeof text;
    for (int d = 0; d < 3; d++, whole /= 10)
        text[--at] = (char)('0' + whole % 10);
    text[--at] = '.';
    do {
        text[--at] = (char)('0' + whole % 10);
        whole /= 10;
    } while (whole > 0);
    put(o, text + at, sizeof text - (size_t)at);
#else
    char text[32];
    int length = snprintf(text, sizeof text, "%.3f", age);
    put(o, text, (size_t)length);
#endif
    put(o, after, sizeof after - 1);
}

static int digit_count(int64_t n)
{
    int count = 1;
    while (n >= 10) {
        n /= 10;
        count++;
    }
    return count;
}

/* "\n    #N  " with N left-aligned in `width` characters, as f"{n:<{width}}". */
static void put_line_start(struct out *o, int64_t n, int width)
{
    char text[48] = "\n    #";
    int at = 6, digits = digit_count(n);
    for (int d = digits - 1; d >= 0; d--, n /= 10)
        text[at + d] = (char)('0' + n % 10);
    at += digits;
    while (at < 6 + width)
        text[at++] = ' ';
    text[at++] = ' ';
    text[at++] = ' ';
    put(o, text, (size_t)at);
}

int64_t lt_loss_records(const struct lt_texts *t, const struct lt_loss_columns *c,
                        int64_t count, const struct lt_stacks *s, uint8_t *out, int64_t room)
{
    static const char in_record[] = " in loss record ";
    static const char indent[] = "\n      ";
    static const char hex[] = "0123456789abcdef";
    struct out o = {out, out + room, 0};
    for (int64_t i = 0; i < count; i++) {
        if (i + PREFETCH_AHEAD < count) { /* records are in display order, their stacks not */
            const uint64_t *ahead = s->words + c->starts[i + PREFETCH_AHEAD];
            for (int64_t f = 0; f < c->depths[i + PREFETCH_AHEAD]; f += 8)
                __builtin_prefetch(ahead + f);
        }
        put(&o, "\n", 1);
        put_text(&o, t, c->sentences[i]);
        if (c->numbers[i] > 0) {
            put(&o, in_record, sizeof in_record - 1);
            put_grouped(&o, c->numbers[i]);
            put_text(&o, t, t->of_total);
        }
        put(&o, indent, sizeof indent - 1);
        put_text(&o, t, c->kinds[i]);
        char id[8];
        for (int d = 0; d < 8; d++)
            id[d] = hex[(c->ids[i] >> (28 - 4 * d)) & 0xF];
        put(&o, id, 8);
        if (c->allocated[i] >= 0)
            put_text(&o, t, c->allocated[i]);
        double age = c->ages[i];
        if (!isnan(age)) {
            if (!(fabs(age) < 1e15))
                return -2; /* Python formats what does not fit here */
            put_age(&o, age);
        }
        if (c->growth[i] >= 0)
            put_text(&o, t, c->growth[i]);
        /* The backtrace: an address's frames (inlined ones first) on consecutive slots. */
        const uint64_t *stack = s->words + c->starts[i];
        int64_t frames = 0, found[FOUND_KEPT];
        for (int64_t f = 0; f < c->depths[i]; f++) {
            int64_t at = lt_find_address(s->addresses, s->address_count, stack[f]);
            if (at < 0)
                return -2;
            if (f < FOUND_KEPT)
                found[f] = at;
            frames += s->frame_counts[at];
        }
        if (frames == 0)
            put_text(&o, t, t->no_backtrace);
        int width = digit_count(frames > 0 ? frames - 1 : 0);
        int64_t number = 0;
        for (int64_t f = 0; f < c->depths[i]; f++) {
            int64_t at = f < FOUND_KEPT ? found[f]
                                        : lt_find_address(s->addresses, s->address_count, stack[f]);
            for (int64_t k = 0; k < s->frame_counts[at]; k++, number++) {
                put_line_start(&o, number, width);
                put_text(&o, t, s->first_slots[at] + k);
            }
        }
        put(&o, "\n", 1);
    }
    return o.full ? -1 : o.at - out;
}
