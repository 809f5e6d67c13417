/*
 * bitmap.h — bit operations on arrays of 64-bit words (chunk bitmaps).
 *
 * Layer: core, private.  The taken-chunk bitmap (chunk.c) and the scan's quarantine and mark
 * bitmaps (scan.c) are indexed by chunk number.  Plain operations: each caller holds the lock
 * that guards its bitmap, or is the only writer; the scan's marks, set by several marking
 * threads at once, use bit_test_and_set_atomic.
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

/* Sets bit i; true when this call set it (another thread may race for the same word). */
static inline bool bit_test_and_set_atomic(uint64_t *bits, uint32_t i)
{
    uint64_t mask = (uint64_t)1 << (i & 63);
    if (__atomic_load_n(&bits[i >> 6], __ATOMIC_RELAXED) & mask)
        return false;
    return !(__atomic_fetch_or(&bits[i >> 6], mask, __ATOMIC_RELAXED) & mask);
}

static inline void bit_clear(uint64_t *bits, uint32_t i)
{
    bits[i >> 6] &= ~((uint64_t)1 << (i & 63));
}

#endif
