/*
 * scan_kernel_x86_64.c — the scan's word kernel with AVX2.
 *
 * Layer: core, architecture-specific.  For each word w the question is "w - base < size"
 * (unsigned); AVX2 has only signed 64-bit compares, so both sides are biased by the sign
 * bit.  Sixteen words per iteration are tested and OR-ed into one mask; the rare hit falls
 * back to the scalar check for that block.  The loop is bound by memory bandwidth.
 */
#include "scan.h"

#include <immintrin.h>

__attribute__((target("avx2"))) static void scan_kernel_avx2(const uintptr_t *words, size_t count,
                                                             const struct scan_source *source)
{
    const uint64_t sign = (uint64_t)1 << 63;
    const __m256i base = _mm256_set1_epi64x((long long)core_config.base);
    const __m256i bias = _mm256_set1_epi64x((long long)sign);
    const __m256i limit = _mm256_set1_epi64x((long long)(core_config.size ^ sign));
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        __m256i hit = _mm256_setzero_si256();
        for (unsigned j = 0; j < 16; j += 4) {
            __m256i w = _mm256_loadu_si256((const __m256i *)(words + i + j));
            __m256i offset = _mm256_xor_si256(_mm256_sub_epi64(w, base), bias);
            hit = _mm256_or_si256(hit, _mm256_cmpgt_epi64(limit, offset));
        }
        if (unlikely(!_mm256_testz_si256(hit, hit)))
            scan_kernel_scalar(words + i, 16, source);
    }
    scan_kernel_scalar(words + i, count - i, source);
}

scan_kernel_fn scan_kernel_select(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2"))
        return scan_kernel_avx2;
    return scan_kernel_scalar;
}
