/* Leaked bytes, blocks and records per function (analyze/column_frame_totals.py) in one pass
 * over the STACKS return addresses: each stack counts once for each function it goes through.
 * numpy did it as a matrix of every stack's function numbers, sorted row by row (1.5 s at a
 * million stacks); here it is a lookup per return address.
 * No shared mutable state: the caller's arrays only. */
#include <stdint.h>

#include "report_native.h"

int64_t lt_frame_totals(const uint64_t *words, const int64_t *starts, const int64_t *depths,
                        const int64_t *rows, int64_t row_count, const uint64_t *addresses,
                        int64_t address_count, const int64_t *functions, int64_t width,
                        int64_t function_count, const int64_t *sizes, const int64_t *blocks,
                        const int64_t *records, int64_t *last_row, uint64_t *totals)
{
    for (int64_t f = 0; f < function_count; f++)
        last_row[f] = -1;
    for (int64_t i = 0; i < 3 * function_count; i++)
        totals[i] = 0;
    for (int64_t i = 0; i < row_count; i++) {
        const uint64_t *stack = words + starts[rows[i]];
        for (int64_t d = 0; d < depths[rows[i]]; d++) {
            int64_t at = lt_find_address(addresses, address_count, stack[d]);
            if (at < 0)
                return i;
            for (int64_t k = 0; k < width; k++) {
                int64_t function = functions[at * width + k];
                if (function < 0 || function >= function_count || last_row[function] == i)
                    continue; /* no function (or padding), or counted for this stack */
                last_row[function] = i;
                /* unsigned: a sum past 2^63 wraps as numpy's does, without undefined
                 * behaviour */
                totals[function] += (uint64_t)sizes[i];
                totals[function_count + function] += (uint64_t)blocks[i];
                totals[2 * function_count + function] += (uint64_t)records[i];
            }
        }
    }
    return row_count;
}
