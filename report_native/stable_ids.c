/* The report's stable stack ids in C (analyze/stack_ids.py is the reference): for each
 * record, BLAKE2b with a 4-byte digest of "KIND|" followed by its stack's return addresses'
 * "module+offset" parts joined by '|'. A million records' ids take Python about 5 s (a hash
 * object, a slice and a digest each); here about half a second.
 *
 * BLAKE2b as RFC 7693 specifies it (unkeyed, no salt or personalization), written for this
 * file; tests/test_report_native.py checks it against Python's hashlib on many inputs.
 * No shared mutable state: every call works on its own stack variables and the caller's
 * arrays. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "report_native.h"

static const uint64_t blake2b_iv[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL,
    0xa54ff53a5f1d36f1ULL, 0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL,
    0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

/* Which message word each of the twelve rounds mixes where (RFC 7693, 2.7). */
static const uint8_t blake2b_sigma[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
};

enum { BLOCK = 128 };

struct blake2b {
    uint64_t h[8];
    uint64_t counted; /* bytes compressed so far (ids hash far less than 2^64 bytes) */
    size_t filled;    /* bytes waiting in block */
    uint8_t block[BLOCK];
};

static inline uint64_t rotr64(uint64_t x, unsigned n)
{
    return (x >> n) | (x << (64 - n));
}

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v; /* little-endian: x86_64 and the other targets leaktrace runs on */
}

#define G(a, b, c, d, x, y)                                                            \
    do {                                                                               \
        a = a + b + (x);                                                               \
        d = rotr64(d ^ a, 32);                                                         \
        c = c + d;                                                                     \
        b = rotr64(b ^ c, 24);                                                         \
        a = a + b + (y);                                                               \
        d = rotr64(d ^ a, 16);                                                         \
        c = c + d;                                                                     \
        b = rotr64(b ^ c, 63);                                                         \
    } while (0)

static void compress(struct blake2b *s, int last)
{
    uint64_t m[16], v[16];
    for (int i = 0; i < 16; i++)
        m[i] = load64(s->block + 8 * i);
    for (int i = 0; i < 8; i++) {
        v[i] = s->h[i];
        v[i + 8] = blake2b_iv[i];
    }
    v[12] ^= s->counted; /* the counter's high word stays 0 */
    if (last)
        v[14] = ~v[14];
    /* Unrolled, the schedule's indexes are constants: m and v stay in registers (about 1.6x
     * the speed of the loop here). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 12
#elif defined(__clang__)
#pragma clang loop unroll(full)
#endif
    for (int r = 0; r < 12; r++) {
        const uint8_t *z = blake2b_sigma[r];
        G(v[0], v[4], v[8], v[12], m[z[0]], m[z[1]]);
        G(v[1], v[5], v[9], v[13], m[z[2]], m[z[3]]);
        G(v[2], v[6], v[10], v[14], m[z[4]], m[z[5]]);
        G(v[3], v[7], v[11], v[15], m[z[6]], m[z[7]]);
        G(v[0], v[5], v[10], v[15], m[z[8]], m[z[9]]);
        G(v[1], v[6], v[11], v[12], m[z[10]], m[z[11]]);
        G(v[2], v[7], v[8], v[13], m[z[12]], m[z[13]]);
        G(v[3], v[4], v[9], v[14], m[z[14]], m[z[15]]);
    }
    for (int i = 0; i < 8; i++)
        s->h[i] ^= v[i] ^ v[i + 8];
}

static void blake2b_init(struct blake2b *s, unsigned digest_size)
{
    memcpy(s->h, blake2b_iv, sizeof s->h);
    s->h[0] ^= 0x01010000ULL | digest_size; /* depth 1, fanout 1, no key */
    s->counted = 0;
    s->filled = 0;
}

static void blake2b_update(struct blake2b *s, const uint8_t *data, size_t length)
{
    while (length > 0) {
        if (s->filled == BLOCK) { /* full, and more follows: not the last block */
            s->counted += BLOCK;
            compress(s, 0);
            s->filled = 0;
        }
        size_t take = BLOCK - s->filled < length ? BLOCK - s->filled : length;
        memcpy(s->block + s->filled, data, take);
        s->filled += take;
        data += take;
        length -= take;
    }
}

static uint32_t blake2b_final4(struct blake2b *s)
{
    s->counted += s->filled;
    memset(s->block + s->filled, 0, BLOCK - s->filled);
    compress(s, 1);
    /* The digest is h's first 4 bytes, little-endian; the report reads them as a
     * big-endian number (its 8 hex digits). */
    uint32_t low = (uint32_t)s->h[0];
    return __builtin_bswap32(low);
}

uint32_t lt_blake2b_4(const uint8_t *data, size_t length)
{
    struct blake2b s;
    blake2b_init(&s, 4);
    blake2b_update(&s, data, length);
    return blake2b_final4(&s);
}

/* A record's id text hashed as it is made (texts longer than TEXT_ROOM): 0, or -1 for an
 * address not in `addresses`. */
static int id_stream(struct blake2b *s, const uint8_t *prefixes, const int64_t *prefix_ends,
                      const uint8_t *parts, const int64_t *part_ends, const uint64_t *addresses,
                      int64_t address_count, const uint64_t *stack, int64_t kind, int64_t depth)
{
    static const uint8_t bar = '|';
    int64_t prefix_start = kind > 0 ? prefix_ends[kind - 1] : 0;
    blake2b_update(s, prefixes + prefix_start, (size_t)(prefix_ends[kind] - prefix_start));
    for (int64_t f = 0; f < depth; f++) {
        int64_t index = lt_find_address(addresses, address_count, stack[f]);
        if (index < 0)
            return -1;
        if (f > 0)
            blake2b_update(s, &bar, 1);
        int64_t part_start = index > 0 ? part_ends[index - 1] : 0;
        blake2b_update(s, parts + part_start, (size_t)(part_ends[index] - part_start));
    }
    return 0;
}

/* A record's id text (its kind's prefix, then its return addresses' parts joined by '|')
 * written into text (room bytes): its length, -1 for an address not in `addresses`, -2 when
 * it does not fit. */
static int64_t id_text(const uint8_t *prefixes, const int64_t *prefix_ends, const uint8_t *parts,
                       const int64_t *part_ends, const uint64_t *addresses,
                       int64_t address_count, const uint64_t *stack, int64_t kind,
                       int64_t depth, uint8_t *text, int64_t room)
{
    int64_t prefix_start = kind > 0 ? prefix_ends[kind - 1] : 0;
    int64_t length = prefix_ends[kind] - prefix_start;
    if (length > room)
        return -2;
    memcpy(text, prefixes + prefix_start, (size_t)length);
    for (int64_t f = 0; f < depth; f++) {
        int64_t index = lt_find_address(addresses, address_count, stack[f]);
        if (index < 0)
            return -1;
        int64_t part_start = index > 0 ? part_ends[index - 1] : 0;
        int64_t part = part_ends[index] - part_start;
        if (part + 1 > room - length)
            return -2;
        if (f > 0)
            text[length++] = '|';
        memcpy(text + length, parts + part_start, (size_t)part);
        length += part;
    }
    return length;
}

/* The records' texts are written whole, one after the other; the hash state after each of a
 * text's blocks is kept, and a text that starts with the same blocks as the one before (its
 * stack shares its innermost frames, as neighbouring stacks in the file mostly do) starts
 * from the state after them: in the benchmark's million stacks, most of the hashing. */
enum { TEXT_ROOM = 1 << 16, KEPT_STATES = TEXT_ROOM / BLOCK };

struct id_scratch {
    uint8_t texts[2][TEXT_ROOM];
    uint64_t states[KEPT_STATES][8]; /* h after each non-final block of the last text */
};

/* Blocks a text of `length` bytes compresses before its last one. */
static int64_t leading_blocks(int64_t length)
{
    return length > 0 ? (length - 1) / BLOCK : 0;
}

int64_t lt_stable_ids(const uint8_t *prefixes, const int64_t *prefix_ends,
                      const uint8_t *parts, const int64_t *part_ends,
                      const uint64_t *addresses, int64_t address_count,
                      const uint64_t *words, const int64_t *kinds, const int64_t *starts,
                      const int64_t *depths, int64_t count, uint32_t *ids)
{
    struct id_scratch *scratch = malloc(sizeof *scratch);
    if (scratch == NULL)
        return 0; /* the caller's Python path hashes them */
    int64_t last_length = -1; /* of the text before (-1: none to start from) */
    int current = 0;
    for (int64_t i = 0; i < count; i++) {
        uint8_t *text = scratch->texts[current];
        int64_t length = id_text(prefixes, prefix_ends, parts, part_ends, addresses,
                                 address_count, words + starts[i], kinds[i], depths[i], text,
                                 TEXT_ROOM);
        struct blake2b s;
        blake2b_init(&s, 4);
        if (length == -1) {
            free(scratch);
            return i; /* not a symbolized address: the caller's Python path decides */
        }
        if (length == -2) { /* too long to keep: hashed as it is made, nothing kept */
            if (id_stream(&s, prefixes, prefix_ends, parts, part_ends, addresses,
                          address_count, words + starts[i], kinds[i], depths[i]) < 0) {
                free(scratch);
                return i;
            }
            ids[i] = blake2b_final4(&s);
            last_length = -1;
            continue;
        }
        int64_t blocks = leading_blocks(length), same = 0;
        if (last_length >= 0) {
            const uint8_t *last = scratch->texts[1 - current];
            int64_t limit = leading_blocks(last_length) < blocks ? leading_blocks(last_length)
                                                                 : blocks;
            while (same < limit &&
                   memcmp(text + same * BLOCK, last + same * BLOCK, BLOCK) == 0)
                same++;
        }
        if (same > 0) {
            memcpy(s.h, scratch->states[same - 1], sizeof s.h);
            s.counted = (uint64_t)same * BLOCK;
        }
        for (int64_t b = same; b < blocks; b++) {
            memcpy(s.block, text + b * BLOCK, BLOCK);
            s.counted += BLOCK;
            compress(&s, 0);
            memcpy(scratch->states[b], s.h, sizeof s.h);
        }
        s.filled = (size_t)(length - blocks * BLOCK);
        memcpy(s.block, text + blocks * BLOCK, s.filled);
        ids[i] = blake2b_final4(&s);
        last_length = length;
        current = 1 - current;
    }
    free(scratch);
    return count;
}
