/*
 * bitmap.h — bit operations on arrays of 64-bit words (chunk bitmaps).
 *
 * Layer: core, private.  The taken-chunk bitmap (chunk.c) and the scan's quarantine and mark
 * bitmaps (scan.c) are indexed by chunk number.  Plain operations: each caller holds the lock
 * that guards its bitmap, or is the only writer.
 */
#ifndef ARENASHIM_CORE_BITMAP_H
#define ARENASHIM_CORE_BITMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline size_t bitmap_words(uint32_t bits)
{
    return ((size_t)bits + 63) / 64;
}

static inline bool bit_test(const uint64_t *bits, uint32_t i)
{
    return (bits[i >> 6] >> (i & 63)) & 1;
}

static inline void bit_set(uint64_t *bits, uint32_t i)
{
    bits[i >> 6] |= (uint64_t)1 << (i & 63);
}

static inline void bit_clear(uint64_t *bits, uint32_t i)
{
    bits[i >> 6] &= ~((uint64_t)1 << (i & 63));
}

#endif
