/*
 * malloc_edge.c — edge cases of the malloc family, outside or inside a region.
 *
 *   malloc_edge outside    every check with no region open: nothing may be a region object
 *   malloc_edge inside     the same checks inside an API region: allocations must be region
 *                          objects (arenashim_heapify says so), and region_allocs must grow
 *
 * Prints "OK malloc_edge-MODE" and exits 0 when every check holds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

/* The failed reallocs below leave their argument valid, which gcc cannot know. */
#pragma GCC diagnostic ignored "-Wuse-after-free"

extern void *__libc_malloc(size_t size);
extern void __libc_free(void *p);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);

static int inside;

/* The routing expectation: inside a region, p must be a region object; outside, never. */
#define CHECK_ROUTED(p)                                                                    \
    CHECKF(in_region(p) == (inside && shim_present()), "%s=%p in_region=%d inside=%d", #p, \
           (void *)(p), in_region(p), inside)

static int all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

static void test_malloc_zero_and_free_null(void)
{
    void *a = malloc(opaque_size(0));
    void *b = malloc(opaque_size(0));
    void *c = malloc(opaque_size(0));
    CHECK(a != NULL && b != NULL && c != NULL);
    CHECK(a != b && b != c && a != c);
    CHECK_ROUTED(a);
    free(a);
    free(b);
    free(c);
    void *z1 = calloc(opaque_size(0), opaque_size(0)), *z2 = calloc(opaque_size(0), opaque_size(8));
    CHECK(z1 != NULL && z2 != NULL && z1 != z2);
    free(z1);
    free(z2);
    void *r0 = realloc(NULL, opaque_size(0));
    CHECK(r0 != NULL);
    free(r0);
    free(NULL);
    free(opaque_ptr(NULL));
}

static void test_calloc_after_undo(void)
{
    static const size_t sizes[] = { 1, 16, 64, 100, 4000, 4096, 70000 };
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = opaque_size(sizes[i]);
        unsigned char *p = malloc(n);
        CHECK(p != NULL);
        memset(p, 0xff, n);
        free(p);
        unsigned char *q = calloc(1, n);
        CHECK(q != NULL);
        CHECKF(all_zero(q, n), "calloc(1, %zu) after free of a dirty object", n);
        CHECK_ROUTED(q);
        /* Larger than the freed one: the dirty prefix must be cleared too. */
        memset(q, 0xee, n);
        free(q);
        unsigned char *r = calloc(2, n);
        CHECKF(r && all_zero(r, 2 * n), "calloc(2, %zu) after free", n);
        free(r);
    }
    /* A shrunk object leaves dirty bytes behind it. */
    unsigned char *p = malloc(opaque_size(512));
    memset(p, 0xab, 512);
    p = realloc(p, opaque_size(16));
    CHECK(p != NULL);
    unsigned char *q = calloc(1, opaque_size(480));
    CHECKF(q && all_zero(q, 480), "calloc after shrinking realloc");
    free(q);
    free(p);
    /* calloc of many elements. */
    int *v = calloc(opaque_size(10000), sizeof(int));
    CHECK(v != NULL);
    int bad = 0;
    for (int i = 0; i < 10000; i++)
        bad |= v[i];
    CHECK(bad == 0);
    CHECK_ROUTED(v);
    free(v);
}

static void test_overflow(void)
{
    errno = 0;
    void *p = calloc(opaque_size(SIZE_MAX / 2 + 1), opaque_size(2));
    CHECK(p == NULL && errno == ENOMEM);
    errno = 0;
    p = calloc(opaque_size(SIZE_MAX), opaque_size(SIZE_MAX));
    CHECK(p == NULL && errno == ENOMEM);
    errno = 0;
    p = calloc(opaque_size((size_t)1 << 33), opaque_size((size_t)1 << 33));
    CHECK(p == NULL && errno == ENOMEM);

    errno = 0;
    p = reallocarray(NULL, opaque_size(SIZE_MAX), opaque_size(2));
    CHECK(p == NULL && errno == ENOMEM);
    char *keep = malloc(opaque_size(32));
    strcpy(keep, "still here");
    errno = 0;
    p = reallocarray(keep, opaque_size(SIZE_MAX / 2), opaque_size(4));
    CHECK(p == NULL && errno == ENOMEM);
    CHECK(strcmp(keep, "still here") == 0);
    char *grown = reallocarray(keep, opaque_size(10), opaque_size(100));
    CHECK(grown != NULL && strcmp(grown, "still here") == 0);
    free(grown);

    errno = 0;
    p = malloc(opaque_size(SIZE_MAX));
    CHECK(p == NULL && errno == ENOMEM);
    errno = 0;
    p = malloc(opaque_size(SIZE_MAX - 4096));
    CHECK(p == NULL && errno == ENOMEM);
    errno = 0;
    p = malloc(opaque_size((size_t)PTRDIFF_MAX + 1));
    CHECK(p == NULL && errno == ENOMEM);
    errno = 0;
    char *r = malloc(opaque_size(16));
    p = realloc(r, opaque_size(SIZE_MAX - 64));
    CHECK(p == NULL && errno == ENOMEM);
    free(r);
    errno = 0;
    p = aligned_alloc(opaque_size(64), opaque_size(SIZE_MAX - 32));
    CHECK(p == NULL && errno == ENOMEM);
    void *out = (void *)0x1;
    CHECK(posix_memalign(&out, opaque_size(64), opaque_size(SIZE_MAX - 32)) == ENOMEM);
    errno = 0;
    p = pvalloc(opaque_size(SIZE_MAX - 10));
    CHECK(p == NULL && errno == ENOMEM);
}

static void test_realloc_basics(void)
{
    char *p = realloc(NULL, opaque_size(100));
    CHECK(p != NULL);
    CHECK_ROUTED(p);
    memset(p, 'x', 100);
    errno = 0;
    void *z = realloc(p, opaque_size(0)); /* glibc: frees p, returns NULL */
    CHECK(z == NULL);

    p = reallocarray(NULL, opaque_size(10), opaque_size(10));
    CHECK(p != NULL);
    CHECK_ROUTED(p);
    z = reallocarray(p, opaque_size(0), opaque_size(10)); /* frees, returns NULL */
    CHECK(z == NULL);

    /* Same size, and shrinking an object that is not the last one. */
    char *s1 = malloc(opaque_size(200));
    fill_pattern(s1, 200, 21);
    char *s2 = malloc(opaque_size(10));
    char *s1b = realloc(s1, opaque_size(200));
    CHECK(s1b != NULL && check_pattern(s1b, 200, 21));
    char *s1c = realloc(s1b, opaque_size(50));
    CHECK(s1c != NULL && check_pattern(s1c, 50, 21) && malloc_usable_size(s1c) >= 50);
    free(s2);
    free(s1c);

    /* Grow through every size class and shrink back, keeping the contents. */
    static const size_t steps[] = { 16, 24, 100, 1000, 4096, 5000, 70000, 300000, 1 << 20,
                                    (8 << 20) + 5, 1 << 20, 5000, 100, 10 };
    size_t have = 0;
    unsigned char *q = NULL;
    for (unsigned i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        size_t n = opaque_size(steps[i]);
        unsigned char *nq = realloc(q, n);
        CHECKF(nq != NULL, "realloc to %zu", n);
        if (!nq)
            break;
        size_t keep = have < n ? have : n;
        CHECKF(check_pattern(nq, keep, 7), "realloc %zu -> %zu lost contents", have, n);
        CHECK_ROUTED(nq);
        CHECKF(malloc_usable_size(nq) >= n, "usable %zu < %zu", malloc_usable_size(nq), n);
        fill_pattern(nq, n, 7);
        q = nq;
        have = n;
    }
    free(q);

    /* The last object grows in place; an earlier one must be copied. */
    unsigned char *a = malloc(opaque_size(40));
    fill_pattern(a, 40, 1);
    unsigned char *b = malloc(opaque_size(40));
    fill_pattern(b, 40, 2);
    unsigned char *a2 = realloc(a, opaque_size(4000));
    CHECK(a2 && check_pattern(a2, 40, 1));
    CHECK(check_pattern(b, 40, 2));
    unsigned char *b2 = realloc(b, opaque_size(8000));
    CHECK(b2 && check_pattern(b2, 40, 2));
    CHECK(check_pattern(a2, 40, 1));
    fill_pattern(b2, 8000, 3);
    CHECK(check_pattern(a2, 40, 1));
    free(a2);
    free(b2);
}

static void test_aligned(void)
{
    static const size_t sizes[] = { 1, 24, 100, 4096, 5000, 70000 };
    for (size_t align = 16; align <= 65536; align *= 2) {
        for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = opaque_size(sizes[i]);
            size_t al = opaque_size(align);
            void *ptrs[4];
            ptrs[0] = aligned_alloc(al, n);
            CHECK(posix_memalign(&ptrs[1], al, n) == 0);
            ptrs[2] = memalign(al, n);
            ptrs[3] = __libc_memalign(al, n);
            for (int k = 0; k < 4; k++) {
                CHECKF(ptrs[k] != NULL, "kind %d align %zu size %zu", k, al, n);
                if (!ptrs[k])
                    continue;
                CHECKF(((uintptr_t)ptrs[k] & (al - 1)) == 0, "kind %d align %zu size %zu: %p", k, al, n,
                       ptrs[k]);
                CHECKF(malloc_usable_size(ptrs[k]) >= n, "kind %d usable", k);
                memset(ptrs[k], 0x5a ^ k, n);
                CHECK_ROUTED(ptrs[k]);
            }
            for (int k = 0; k < 4; k++)
                CHECK(((unsigned char *)ptrs[k])[n - 1] == (0x5a ^ k));
            for (int k = 0; k < 4; k++)
                free(ptrs[k]);
        }
    }
    long page = sysconf(_SC_PAGESIZE);
    for (size_t n = 1; n <= 3 * 4096 + 1; n += 4095) {
        char *v = valloc(opaque_size(n));
        CHECK(v != NULL && ((uintptr_t)v % page) == 0);
        memset(v, 1, n);
        CHECK_ROUTED(v);
        char *pv = pvalloc(opaque_size(n));
        CHECK(pv != NULL && ((uintptr_t)pv % page) == 0);
        size_t rounded = (n + page - 1) / page * page;
        CHECKF(malloc_usable_size(pv) >= rounded, "pvalloc(%zu) usable %zu", n, malloc_usable_size(pv));
        memset(pv, 2, rounded); /* pvalloc rounds the size up to whole pages */
        CHECK_ROUTED(pv);
        free(v);
        free(pv);
    }
    /* memalign rounds an alignment that is not a power of two up, as glibc does. */
    static const size_t odd[] = { 24, 48, 100, 3000 };
    for (unsigned i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        size_t up = 1;
        while (up < odd[i])
            up <<= 1;
        char *m = memalign(opaque_size(odd[i]), opaque_size(100));
        CHECKF(m != NULL && ((uintptr_t)m & (up - 1)) == 0, "memalign(%zu) gave %p", odd[i], (void *)m);
        free(m);
    }
    char *m1 = memalign(opaque_size(1), opaque_size(33));
    CHECK(m1 != NULL && ((uintptr_t)m1 & 15) == 0);
    free(m1);
    char *pv0 = pvalloc(opaque_size(0));
    CHECK(pv0 != NULL && ((uintptr_t)pv0 % page) == 0);
    free(pv0);

    /* Alignments larger than a chunk still work (the heap may serve them). */
    void *big = aligned_alloc(opaque_size(4 << 20), opaque_size(100));
    CHECK(big != NULL && ((uintptr_t)big & ((4 << 20) - 1)) == 0);
    free(big);

    /* Invalid alignments. */
    static const size_t bad[] = { 3, 0, 24, 12, 48 };
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *out = (void *)0x1234;
        int rc = posix_memalign(&out, opaque_size(bad[i]), opaque_size(64));
        CHECKF(rc == EINVAL, "posix_memalign(align=%zu) returned %d", bad[i], rc);
        CHECKF(out == (void *)0x1234, "posix_memalign(align=%zu) changed *out on failure", bad[i]);
    }
    /* posix_memalign alignment not a multiple of sizeof(void *). */
    void *out = NULL;
    CHECK(posix_memalign(&out, opaque_size(4), opaque_size(64)) == EINVAL);
    static const size_t bad_aligned[] = { 3, 24, 100 };
    for (unsigned i = 0; i < sizeof bad_aligned / sizeof bad_aligned[0]; i++) {
        errno = 0;
        void *p = aligned_alloc(opaque_size(bad_aligned[i]), opaque_size(bad_aligned[i] * 4));
        CHECKF(p == NULL && errno == EINVAL, "aligned_alloc(%zu) -> %p errno %d", bad_aligned[i], p,
               errno);
        free(p);
    }
    /* posix_memalign keeps errno on success. */
    errno = 4321;
    CHECK(posix_memalign(&out, opaque_size(256), opaque_size(300)) == 0);
    CHECK(errno == 4321);
    free(out);
}

static void test_usable_and_errno(void)
{
    static const size_t sizes[] = { 0, 1, 15, 16, 17, 100, 4096, 100000, 300000, 3 << 20 };
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = opaque_size(sizes[i]);
        char *p = malloc(n);
        CHECK(p != NULL);
        CHECKF(malloc_usable_size(p) >= n, "usable(%zu) = %zu", n, malloc_usable_size(p));
        if (n)
            memset(p, 3, n);
        errno = 1234;
        free(p);
        CHECKF(errno == 1234, "free of %zu-byte object changed errno to %d", n, errno);
    }
    CHECK(malloc_usable_size(NULL) == 0);
    /* errno across free of an object that is not the last one (no undo) */
    char *a = malloc(opaque_size(64)), *b = malloc(opaque_size(64));
    errno = 1234;
    free(a);
    CHECK(errno == 1234);
    free(b);
    CHECK(errno == 1234);
    /* a large jemalloc object freed from here */
    errno = 1234;
    free(opaque_ptr(malloc(opaque_size(64 << 20))));
    CHECK(errno == 1234);
}

static void test_large(void)
{
    static const size_t sizes[] = { 300 << 10, 1 << 20, (1 << 20) + 1, 8 << 20, 33 << 20 };
    void *held[5];
    for (unsigned i = 0; i < 5; i++) {
        size_t n = opaque_size(sizes[i]);
        unsigned char *p = malloc(n);
        CHECKF(p != NULL, "malloc(%zu)", n);
        held[i] = p;
        if (!p)
            continue;
        CHECK(((uintptr_t)p & 15) == 0);
        fill_pattern(p, n, i);
        CHECK_ROUTED(p);
        CHECK(malloc_usable_size(p) >= n);
    }
    for (unsigned i = 0; i < 5; i++) {
        CHECKF(held[i] && check_pattern(held[i], sizes[i], i), "large object %u damaged", i);
        free(held[i]);
    }
    unsigned char *z = calloc(1, opaque_size(8 << 20));
    CHECK(z != NULL && all_zero(z, 8 << 20));
    CHECK_ROUTED(z);
    free(z);
}

static void test_libc_names(void)
{
    char *p = __libc_malloc(opaque_size(100));
    CHECK(p != NULL);
    memset(p, 1, 100);
    CHECK_ROUTED(p);
    CHECK(malloc_usable_size(p) >= 100);
    p = __libc_realloc(p, opaque_size(5000));
    CHECK(p != NULL && p[99] == 1);
    CHECK_ROUTED(p);
    __libc_free(p);
    int *c = __libc_calloc(opaque_size(100), sizeof(int));
    CHECK(c != NULL && c[0] == 0 && c[99] == 0);
    free(c);
    /* Mixed: malloc'd object released with __libc_free and vice versa. */
    void *m = malloc(opaque_size(10));
    __libc_free(m);
    void *l = __libc_malloc(opaque_size(10));
    free(l);
    char *d = strdup("duplicate me");
    CHECK(d && strcmp(d, "duplicate me") == 0);
    CHECK_ROUTED(d);
    free(d);
    char *nd = strndup("abcdefgh", 3);
    CHECK(nd && strcmp(nd, "abc") == 0);
    free(nd);
}

/* realloc of a region object from a thread that has no region open, while the region is
 * still open on its own thread. */
struct realloc_job {
    unsigned char *p;
    size_t n;
    unsigned char *result;
    int result_in_region;
};

static void *realloc_elsewhere(void *arg)
{
    struct realloc_job *job = arg;
    job->result = realloc(job->p, job->n * 4);
    job->result_in_region = in_region(job->result);
    return NULL;
}

static void test_realloc_across(void)
{
    size_t n = opaque_size(1000);
    unsigned char *p = malloc(n);
    fill_pattern(p, n, 9);
    unsigned char *after = malloc(opaque_size(16)); /* so p is not the last object */
    struct realloc_job job = { p, n, NULL, 0 };
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, realloc_elsewhere, &job) == 0);
    pthread_join(thread, NULL);
    CHECK(job.result != NULL && check_pattern(job.result, n, 9));
    CHECK(job.result_in_region == 0); /* that thread has no region: the heap serves it */
    free(job.result);
    free(after);

    /* A heap object reallocated inside a region keeps its contents. */
    if (inside)
        region_end();
    unsigned char *h = malloc(opaque_size(100));
    fill_pattern(h, 100, 4);
    CHECK(!in_region(h));
    if (inside)
        region_begin();
    unsigned char *h2 = realloc(h, opaque_size(100000));
    CHECK(h2 != NULL && check_pattern(h2, 100, 4));
    fill_pattern(h2, 100000, 5);
    unsigned char *h3 = realloc(h2, opaque_size(50));
    CHECK(h3 != NULL && check_pattern(h3, 50, 5));
    free(h3);

    /* A region object reallocated from an inner region: contents kept. */
    if (inside) {
        unsigned char *o = malloc(opaque_size(300));
        fill_pattern(o, 300, 11);
        region_begin();
        unsigned char *o2 = realloc(o, opaque_size(3000));
        CHECK(o2 != NULL && check_pattern(o2, 300, 11));
        free(o2);
        region_end();
    }
}

int main(int argc, char **argv)
{
    inside = argc > 1 && strcmp(argv[1], "inside") == 0;
    const char *name = inside ? "malloc_edge-inside" : "malloc_edge-outside";
    long long before = stats_counter("region_allocs");
    if (inside) {
        CHECK(!shim_present() || region_begin() == 1);
    }
    test_malloc_zero_and_free_null();
    test_calloc_after_undo();
    test_overflow();
    test_realloc_basics();
    test_aligned();
    test_usable_and_errno();
    test_large();
    test_libc_names();
    test_realloc_across();
    if (inside)
        region_end();
    long long after = stats_counter("region_allocs");
    if (shim_present()) {
        if (inside)
            CHECKF(after - before >= 200, "region_allocs grew by %lld only", after - before);
        else
            CHECKF(after == before, "region_allocs grew by %lld outside regions", after - before);
    }
    return finish(name);
}
