/* The OR of each stack's return addresses' bit masks (suppressions/apply_columns.py: which
 * functions a suppression entry needs each stack has), in one pass over the STACKS return
 * addresses instead of a numpy matrix of them (most of a second at a million stacks).
 * No shared mutable state: the caller's arrays only. */
#include <stdint.h>

#include "report_native.h"

int64_t lt_stack_masks(const uint64_t *words, const int64_t *starts, const int64_t *depths,
                       const int64_t *rows, int64_t row_count, const uint64_t *addresses,
                       int64_t address_count, const uint64_t *address_masks, uint64_t *masks)
{
    for (int64_t i = 0; i < row_count; i++) {
        const uint64_t *stack = words + starts[rows[i]];
        uint64_t mask = 0;
        for (int64_t d = 0; d < depths[rows[i]]; d++) {
            int64_t at = lt_find_address(addresses, address_count, stack[d]);
            if (at < 0)
                return i;
            mask |= address_masks[at];
        }
        masks[i] = mask;
    }
    return row_count;
}
