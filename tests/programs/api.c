/*
 * api.c — the public API of include/arenashim.h, call by call.
 *
 *   api    region depth and nesting (200 levels), end without begin, heapify, explicit arenas
 *          (alignments, large and zero-size requests, several at once), arenashim_stats_json's
 *          snprintf contract, arenashim_collect inside and outside regions.
 *
 * Prints "OK api" and exits 0 when every check holds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static void test_nesting(void)
{
    enum { DEPTH = 200 };
    static char *objects[DEPTH];
    region_end(); /* no region open: ignored */
    region_end();
    for (int d = 0; d < DEPTH; d++) {
        int depth = region_begin();
        CHECKF(depth == d + 1, "region_begin returned %d at level %d", depth, d + 1);
        objects[d] = malloc(100 + d);
        memset(objects[d], d, 100 + d);
        CHECK(in_region(objects[d]));
        if (d > 0)
            free(objects[d - 1]); /* an outer region's object, freed from an inner region */
    }
    for (int d = DEPTH - 1; d >= 0; d--) {
        for (int k = 0; k <= d; k++)
            if (k == d || k % 37 == 0)
                CHECKF(objects[k][99 + k] == (char)k, "level %d object damaged at depth %d", k, d);
        region_end();
    }
    region_end(); /* again none open */
    char *after = malloc(10);
    CHECK(!in_region(after));
    free(after);
}

static void test_heapify(void)
{
    CHECK(arenashim_heapify(NULL) == NULL);
    char *heap = malloc(50);
    CHECK(arenashim_heapify(heap) == heap);
    static const char stack_text[] = "not heap";
    CHECK(arenashim_heapify(stack_text) == stack_text);

    region_begin();
    char *in = malloc(300);
    for (int i = 0; i < 300; i++)
        in[i] = (char)(i * 3);
    char *big = malloc(2 << 20);
    memset(big, 0x42, 2 << 20);
    char *copy = arenashim_heapify(in);
    char *big_copy = arenashim_heapify(big);
    CHECK(copy != NULL && copy != in && memcmp(copy, in, 300) == 0);
    CHECK(big_copy != NULL && big_copy != big && memcmp(big_copy, big, 2 << 20) == 0);
    CHECK(!in_region(copy) && !in_region(big_copy));
    region_end();
    /* The copies outlive the region, are whole and can be resized and freed. */
    for (int i = 0; i < 300; i++)
        CHECKF(copy[i] == (char)(i * 3), "copy byte %d", i);
    CHECK(big_copy[(2 << 20) - 1] == 0x42);
    copy = realloc(copy, 100000);
    CHECK(copy != NULL && copy[299] == (char)(299 * 3));
    free(copy);
    free(big_copy);
    free(heap);
}

static void test_arenas(void)
{
    arenashim_arena *a = arenashim_arena_new(), *b = arenashim_arena_new();
    CHECK(a != NULL && b != NULL && a != b);
    char *first_a = NULL, *first_b = NULL;
    for (int i = 0; i < 1000; i++) {
        size_t align = (size_t)1 << (i % 13); /* 1 .. 4096 */
        size_t size = (size_t)(i * 37 % 5000);
        char *p = arenashim_arena_alloc(i % 2 ? a : b, size, i % 3 ? align : 0);
        CHECKF(p != NULL, "arena alloc %d", i);
        if (!p)
            continue;
        size_t need = i % 3 ? (align < 16 ? 16 : align) : 16;
        CHECKF(((uintptr_t)p & (need - 1)) == 0, "arena object %p not %zu-aligned", (void *)p, need);
        memset(p, i, size);
        if (i == 1)
            first_a = p;
        if (i == 2)
            first_b = p;
    }
    CHECK(first_a && in_region(first_a));
    CHECK(first_b && in_region(first_b));
    char *large = arenashim_arena_alloc(a, 5 << 20, 0);
    CHECK(large != NULL && in_region(large));
    if (large)
        memset(large, 1, 5 << 20);
    char *aligned = arenashim_arena_alloc(b, 100, 65536);
    CHECK(aligned != NULL && ((uintptr_t)aligned & 65535) == 0);
    /* Arena objects are not a region's: malloc inside a region is unaffected by them. */
    region_begin();
    char *r = malloc(64);
    CHECK(in_region(r));
    char *c = arenashim_heapify(first_a);
    CHECK(c != NULL && c != first_a && (unsigned char)c[0] == 1);
    region_end();
    free(c);
    arenashim_arena_free(a);
    /* b still works after a is gone */
    char *late = arenashim_arena_alloc(b, 1000, 0);
    CHECK(late != NULL);
    memset(late, 7, 1000);
    CHECK(first_b[0] == 2 && first_b[73] == 2);
    arenashim_arena_free(b);
    arenashim_arena_free(NULL); /* harmless */
    CHECK(arenashim_arena_alloc(NULL, 10, 0) == NULL);
}

static void test_stats_json(void)
{
    size_t need = arenashim_stats_json(NULL, 0);
    CHECK(need > 20);
    char small[16];
    memset(small, 'x', sizeof small);
    size_t again = arenashim_stats_json(small, sizeof small);
    CHECKF(again == need, "needed %zu, then %zu", need, again);
    CHECK(small[15] == '\0' && small[0] == '{');
    char *full = malloc(need + 1);
    CHECK(arenashim_stats_json(full, need + 1) == need);
    CHECK(strlen(full) == need && full[0] == '{' && full[need - 1] == '}');
    CHECK(strstr(full, "\"regions_begun\"") != NULL);
    free(full);
}

static void test_collect(void)
{
    arenashim_collect();
    region_begin();
    char *p = malloc(1000);
    memset(p, 9, 1000);
    arenashim_collect(); /* inside a region: live objects stay live */
    CHECK(p[999] == 9);
    region_end();
    arenashim_collect();
}

int main(void)
{
    if (!shim_present())
        return finish("api");
    test_nesting();
    test_heapify();
    test_arenas();
    test_stats_json();
    test_collect();
    long long begun = stats_counter("regions_begun"), ended = stats_counter("regions_ended");
    CHECKF(begun == ended, "regions_begun %lld != regions_ended %lld", begun, ended);
    CHECKF(begun == 200 + 1 + 1 + 2 + 1, "regions_begun %lld", begun);
    return finish("api");
}
