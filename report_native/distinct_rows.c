/* Rows of numbers numbered by their distinct values, with a hash table (render/column_text.py:
 * the texts a loss record's head repeats, such as its sentence from its sizes and leak kind,
 * are made once per distinct row of those columns; a million records have a few distinct ones,
 * and a Python dictionary lookup per record cost about a second).
 * No shared mutable state: the caller's arrays only. */
#include <stdint.h>
#include <string.h>

#include "report_native.h"

static uint64_t row_hash(const int64_t *row, int64_t width)
{
    uint64_t hash = 0x9e3779b97f4a7c15ULL;
    for (int64_t k = 0; k < width; k++) {
        hash ^= (uint64_t)row[k];
        hash *= 0xff51afd7ed558ccdULL; /* a multiply and a shift mix every bit of the row */
        hash ^= hash >> 32;
    }
    return hash;
}

int64_t lt_distinct_rows(const int64_t *rows, int64_t count, int64_t width, int64_t *numbers,
                         int64_t *firsts, int64_t *table, int64_t table_size)
{
    if (width <= 0 || table_size <= count || (table_size & (table_size - 1)) != 0)
        return -1;
    memset(table, 0xff, (size_t)table_size * sizeof *table); /* -1: an empty slot */
    int64_t distinct = 0;
    uint64_t mask = (uint64_t)table_size - 1;
    for (int64_t i = 0; i < count; i++) {
        const int64_t *row = rows + i * width;
        uint64_t slot = row_hash(row, width) & mask;
        for (;;) {
            int64_t number = table[slot];
            if (number < 0) { /* a new row: the next number */
                table[slot] = number = distinct++;
                firsts[number] = i;
                numbers[i] = number;
                break;
            }
            if (memcmp(rows + firsts[number] * width, row, (size_t)width * sizeof *row) == 0) {
                numbers[i] = number;
                break;
            }
            slot = (slot + 1) & mask; /* the table is more than half empty: a free slot is near */
        }
    }
    return distinct;
}
