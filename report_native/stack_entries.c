/* The STACKS section's entries walked in C (capture/stack_table.py parse_stacks): entries
 * have different lengths (an id and depth, six totals, then depth return addresses), so
 * where each starts is found one entry after the other; Python takes about 0.7 s for the
 * million entries of a big capture. No shared mutable state: the caller's arrays only. */
#include <stdint.h>
#include <string.h>

#include "report_native.h"

int64_t lt_stack_entries(const uint8_t *data, int64_t size, int64_t count, int64_t entry_size,
                         int64_t *entries, int64_t *depths)
{
    int64_t pos = 0;
    for (int64_t i = 0; i < count; i++) {
        if (size - pos < entry_size)
            return i;
        uint32_t depth;
        memcpy(&depth, data + pos + 4, 4); /* after the u32 id; little-endian */
        if ((int64_t)depth * 8 > size - pos - entry_size)
            return i;
        entries[i] = pos;
        depths[i] = depth;
        pos += entry_size + (int64_t)depth * 8;
    }
    return count;
}
