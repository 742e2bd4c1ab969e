/* The text report's loss records written in C (render/column_text.py, _NativeText): each
 * record's head, from texts the caller made once (sentences, kind prefixes, allocation and
 * growth parts) and the numbers formatted here, then its backtrace's lines. Python spends
 * several microseconds a record on the same text at a million records. The text is
 * render/text.py's, byte for byte (tests/test_report_native.py compares them).
 * No shared mutable state: the caller's arrays only. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "report_native.h"

enum { FOUND_KEPT = 256 }; /* frames whose address index is kept between the two walks */

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
    char digits[32], grouped[48];
    int count = snprintf(digits, sizeof digits, "%lld", (long long)n);
    int at = 0;
    for (int i = 0; i < count; i++) {
        if (i > 0 && (count - i) % 3 == 0)
            grouped[at++] = ',';
        grouped[at++] = digits[i];
    }
    put(o, grouped, (size_t)at);
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
            char text[64];
            if (!(fabs(age) < 1e15))
                return -2; /* Python formats what does not fit here */
            int length = snprintf(text, sizeof text, "; oldest live block %.3f s old at capture",
                                  age);
            put(&o, text, (size_t)length);
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
