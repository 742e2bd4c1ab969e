/* Distinct values by hashing. Rows of numbers numbered by their distinct values
 * (render/column_text.py: the texts a loss record's head repeats, such as its sentence from
 * its sizes and leak kind, are made once per distinct row of those columns; a million records
 * have a few distinct ones, and a Python dictionary lookup per record cost about a second).
 * The distinct return addresses of the stacks (capture/stack_table.py: 25 million words
 * sorted a million at a time cost a second; a big program has thousands of distinct ones).
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

int64_t lt_distinct_words(const uint64_t *words, const int64_t *starts, const int64_t *depths,
                          int64_t count, uint64_t *table, int64_t table_size, uint64_t *out)
{
    if (table_size <= 0 || (table_size & (table_size - 1)) != 0)
        return -1;
    memset(table, 0, (size_t)table_size * sizeof *table); /* 0: an empty slot */
    uint64_t mask = (uint64_t)table_size - 1;
    int64_t distinct = 0, zero = 0;
    for (int64_t i = 0; i < count; i++) {
        const uint64_t *stack = words + starts[i];
        for (int64_t d = 0; d < depths[i]; d++) {
            uint64_t word = stack[d];
            if (word == 0) { /* the empty slots' value: flagged on its own */
                zero = 1;
                continue;
            }
            uint64_t slot = word * 0x9e3779b97f4a7c15ULL;
            slot = (slot ^ slot >> 29) & mask;
            while (table[slot] != 0 && table[slot] != word)
                slot = (slot + 1) & mask;
            if (table[slot] == 0) {
                if (2 * (distinct + 1) > table_size)
                    return -1; /* more than half full: the caller takes another way */
                table[slot] = word;
                out[distinct++] = word;
            }
        }
    }
    if (zero) {
        if (2 * (distinct + 1) > table_size)
            return -1;
        out[distinct++] = 0;
    }
    return distinct;
}
