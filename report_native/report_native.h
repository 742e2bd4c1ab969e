/* leaktrace's report helper library (libleaktrace_report.so): the report's per-record loops
 * that Python does too slowly at a million records (stable ids, the loss records' text,
 * joining the text's pieces, walking the STACKS entries), loaded with ctypes by
 * src/leaktrace/report_native.py. The Python code computes the same thing when the library
 * is absent. */
#ifndef LEAKTRACE_REPORT_NATIVE_H
#define LEAKTRACE_REPORT_NATIVE_H

#include <stddef.h>
#include <stdint.h>

/* BLAKE2b of data with a 4-byte digest, as the big-endian number of its bytes:
 * int.from_bytes(hashlib.blake2b(data, digest_size=4).digest(), "big"). */
uint32_t lt_blake2b_4(const uint8_t *data, size_t length);

/* The stable id of each of `count` records (analyze/stack_ids.py): the hash of the prefix
 * of its API kind (prefixes[prefix_ends[kind - 1]:prefix_ends[kind]], kind numbers index
 * prefix_ends), then the parts of the return addresses words[starts[i]:starts[i] +
 * depths[i]] joined by '|'; an address's part is parts[part_ends[j - 1]:part_ends[j]] for
 * its index j in the sorted `addresses`. Returns count, or the index of the first record
 * with an address that is not in `addresses` (ids from there on are not set), or 0 when it
 * could not allocate its 160 KB of scratch room. */
int64_t lt_stable_ids(const uint8_t *prefixes, const int64_t *prefix_ends,
                      const uint8_t *parts, const int64_t *part_ends,
                      const uint64_t *addresses, int64_t address_count,
                      const uint64_t *words, const int64_t *kinds, const int64_t *starts,
                      const int64_t *depths, int64_t count, uint32_t *ids);

/* The concatenation of the pieces `pieces` into `out` (room bytes): piece p < line_count is
 * lines[line_starts[p]:][:line_lengths[p]], a larger one head p - line_count of `heads`
 * likewise. Returns the bytes written, or -1 for a piece out of range or too little room
 * (the caller's Python path then joins the batch). */
int64_t lt_gather(const uint8_t *lines, const int64_t *line_starts,
                  const int64_t *line_lengths, int64_t line_count, const uint8_t *heads,
                  const int64_t *head_starts, const int64_t *head_lengths, int64_t head_count,
                  const int64_t *pieces, int64_t piece_count, uint8_t *out, int64_t room);

/* Where each of `count` STACKS entries starts (bytes from `data`) and its depth: an entry is
 * entry_size bytes (u32 id, u32 depth, totals) then depth u64 return addresses. Returns
 * count, or the index of the first entry that does not fit in `size` bytes (the caller's
 * Python path then says what is wrong). */
int64_t lt_stack_entries(const uint8_t *data, int64_t size, int64_t count, int64_t entry_size,
                         int64_t *entries, int64_t *depths);

/* The distinct rows among `count` rows of `width` numbers (row i is rows[i * width:][:width]),
 * numbered in the order first met: numbers[i] is row i's number, firsts[n] the first row
 * numbered n. table is scratch room for table_size (a power of two above count) numbers.
 * Returns how many distinct rows there are, or -1 for a table_size that does not fit. */
int64_t lt_distinct_rows(const int64_t *rows, int64_t count, int64_t width, int64_t *numbers,
                         int64_t *firsts, int64_t *table, int64_t table_size);

/* The distinct words among those of `count` stacks (stack i is words[starts[i]:][:depths[i]]),
 * in the order first met, into out (room for table_size / 2); table is scratch room for
 * table_size (a power of two) words. Returns how many, or -1 when there are more than
 * table_size / 2 (the caller's numpy path then finds them). */
int64_t lt_distinct_words(const uint64_t *words, const int64_t *starts, const int64_t *depths,
                          int64_t count, uint64_t *table, int64_t table_size, uint64_t *out);

/* Per function, the sums over the stacks rows[0..row_count) that go through it (each stack
 * once) of sizes[i], blocks[i] and records[i] (i indexes rows), into totals (3 rows of
 * function_count). Stack r is words[starts[r]:][:depths[r]]; the functions of the address
 * addresses[a] (sorted) are functions[a * width:][:width], -1 for none. last_row is scratch
 * room for function_count numbers. Returns row_count, or the index of the first stack with
 * an address not in `addresses` (the caller's Python path then counts). */
int64_t lt_frame_totals(const uint64_t *words, const int64_t *starts, const int64_t *depths,
                        const int64_t *rows, int64_t row_count, const uint64_t *addresses,
                        int64_t address_count, const int64_t *functions, int64_t width,
                        int64_t function_count, const int64_t *sizes, const int64_t *blocks,
                        const int64_t *records, int64_t *last_row, uint64_t *totals);

/* Per stack rows[i] (i < row_count; stack r is words[starts[r]:][:depths[r]]), the OR of
 * address_masks[a] over its return addresses addresses[a] (sorted), into masks[i]. Returns
 * row_count, or the index of the first stack with an address not in `addresses`. */
int64_t lt_stack_masks(const uint64_t *words, const int64_t *starts, const int64_t *depths,
                       const int64_t *rows, int64_t row_count, const uint64_t *addresses,
                       int64_t address_count, const uint64_t *address_masks, uint64_t *masks);

/* Texts by number: text i < count is bytes[starts[i]:][:lengths[i]] (made once a report:
 * the frame texts), a larger one text i - count of more_bytes likewise (made for a batch). */
struct lt_texts {
    const uint8_t *bytes;
    const int64_t *starts;
    const int64_t *lengths;
    int64_t count;
    const uint8_t *more_bytes;
    const int64_t *more_starts;
    const int64_t *more_lengths;
    int64_t of_total;     /* " of N" after a loss record number */
    int64_t no_backtrace; /* the line of a record without frames */
};

/* Per record, loss records' columns: text numbers of the sentence ("16 bytes in 1 blocks are
 * definitely lost"), the kind prefix ("malloc, stack "), the allocation part ("; allocated
 * ...", -1: none) and the growth part (-1: none); the loss record number (0: none); the stable
 * id; the oldest block's age (NaN: unknown); the stack's words (depth 0: no backtrace). */
struct lt_loss_columns {
    const int64_t *sentences, *numbers, *kinds, *allocated, *growth, *starts, *depths;
    const uint32_t *ids;
    const double *ages;
};

/* The stacks: words, the sorted distinct return addresses, and per address its first frame
 * text's number and how many frames it has (inlined ones). */
struct lt_stacks {
    const uint64_t *words, *addresses;
    int64_t address_count;
    const int64_t *first_slots, *frame_counts;
};

/* `count` loss records as render/text.py writes them (head, backtrace, empty line) into out.
 * Returns the bytes written; -1 when `room` was too small; -2 for what only the Python path
 * writes (an address without frames, an age too large for this buffer). */
int64_t lt_loss_records(const struct lt_texts *t, const struct lt_loss_columns *c,
                        int64_t count, const struct lt_stacks *s, uint8_t *out, int64_t room);

/* Index of `address` in the sorted `addresses`, or -1 (the loss records, the stable ids, the
 * frame totals and the suppressions' masks look up each return address's text this way).
 * Without branches on the comparisons (a conditional move each step): a million stacks'
 * 25 million lookups mispredicted most of their branches. */
static inline int64_t lt_find_address(const uint64_t *addresses, int64_t count, uint64_t address)
{
    if (count <= 0)
        return -1;
    const uint64_t *base = addresses;
    while (count > 1) {
        int64_t half = count / 2;
        base = base[half] <= address ? base + half : base;
        count -= half;
    }
    return *base == address ? base - addresses : -1;
}

#endif
