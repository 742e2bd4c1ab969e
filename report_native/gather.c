/* The text report's records joined in C (render/column_text.py, _AddressTexts.joined): a
 * batch of records is a list of pieces (each record's head, its frame lines, a newline),
 * each piece one of a few thousand distinct frame lines or one of the batch's heads. Python
 * joins 25 million such pieces at a million records in seconds (a list of their numbers, a
 * lookup each, the join); here it is a copy each.
 * No shared mutable state: every call works on the caller's arrays. */
#include <stdint.h>
#include <string.h>

#include "report_native.h"

int64_t lt_gather(const uint8_t *lines, const int64_t *line_starts,
                  const int64_t *line_lengths, int64_t line_count, const uint8_t *heads,
                  const int64_t *head_starts, const int64_t *head_lengths, int64_t head_count,
                  const int64_t *pieces, int64_t piece_count, uint8_t *out, int64_t room)
{
    uint8_t *at = out;
    for (int64_t i = 0; i < piece_count; i++) {
        int64_t piece = pieces[i];
        const uint8_t *from;
        int64_t length;
        if (piece >= 0 && piece < line_count) {
            from = lines + line_starts[piece];
            length = line_lengths[piece];
        } else if (piece >= line_count && piece - line_count < head_count) {
            from = heads + head_starts[piece - line_count];
            length = head_lengths[piece - line_count];
        } else {
            return -1;
        }
        if (length > room - (at - out))
            return -1;
        memcpy(at, from, (size_t)length);
        at += length;
    }
    return at - out;
}
