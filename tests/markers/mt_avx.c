/*
 * mt_avx.c — markers that return 256-bit vectors in ymm0 (compiled with -mavx2), for mt.c.
 * Knows nothing about arenashim.
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>

#define NOINL __attribute__((noinline, noclone))

extern volatile int seed;

static long scratch(int alloc)
{
    if (!alloc)
        return 0;
    double *p = malloc(64);
    if (p == NULL)
        abort();
    for (int i = 0; i < 8; i++)
        p[i] = i * 0.5;
    long s = (long)(p[7] * 2);
    free(p);
    return s;
}

NOINL __m256 ret_m256(int alloc)
{
    float base = (float)seed + (float)(scratch(alloc) * 0);
    return _mm256_set_ps(base * 8, base * 7, base * 6, base * 5, base * 4, base * 3, base * 2, base);
}

NOINL __m256d ret_m256d(int alloc)
{
    double base = (double)seed / 3 + (double)(scratch(alloc) * 0);
    return _mm256_set_pd(base * 4, -base * 3, base * 2, -base);
}

NOINL __m256i ret_m256i(int alloc)
{
    long long base = seed + scratch(alloc) * 0;
    return _mm256_set_epi64x(base << 48, base << 32, base << 16, base);
}

int avx_supported(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}

void avx_returns(int alloc)
{
    float f[8];
    double d[4];
    long long q[4];
    _mm256_storeu_ps(f, ret_m256(alloc));
    _mm256_storeu_pd(d, ret_m256d(alloc));
    _mm256_storeu_si256((__m256i *)q, ret_m256i(alloc));
    printf("alloc=%d m256=", alloc);
    for (int i = 0; i < 8; i++)
        printf("%a%s", (double)f[i], i < 7 ? "," : "");
    printf(" m256d=%a,%a,%a,%a m256i=%llx,%llx,%llx,%llx\n", d[0], d[1], d[2], d[3], q[0], q[1],
           q[2], q[3]);
}
