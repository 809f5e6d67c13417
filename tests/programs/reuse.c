/*
 * reuse.c — memory handed out again after a scan must look fresh to calloc.
 *
 *   reuse [ROUNDS] [nocollect]
 *
 * Each round fills region memory with 0xab (small objects and a large one), ends the region,
 * drops every pointer to it and runs arenashim_collect(), so that the quarantined chunks can
 * be reused; the next round's calloc()s must still read zero.  With "nocollect" no scan is
 * asked for: the rounds then reuse what a region end keeps for the thread's next region (the
 * rest of a chunk, and pages recycled from the region before).  Prints "OK reuse".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static __attribute__((noinline)) int one_round(int round)
{
    int bad = 0;
    region_begin();
    for (int i = 0; i < 200; i++) {
        size_t n = 16 + (size_t)(i * 131 % 3000);
        unsigned char *c = calloc(1, n);
        if (!c || !all_zero(c, n))
            bad++;
        else
            memset(c, 0xab, n);
    }
    unsigned char *big = calloc(1, 600 << 10);
    if (!big || !all_zero(big, 600 << 10))
        bad++;
    else
        memset(big, 0xab, 600 << 10);
    unsigned char *fill = malloc(100 << 10);
    memset(fill, 0xab, 100 << 10);
    region_end();
    if (bad)
        printf("round %d: %d calloc()s returned dirty memory\n", round, bad);
    return bad;
}

static __attribute__((noinline)) void scrub_stack(void)
{
    volatile char junk[64 << 10];
    memset((char *)junk, 0, sizeof junk);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 30;
    int collect = !(argc > 2 && strcmp(argv[2], "nocollect") == 0);
    int bad = 0;
    for (int r = 0; r < rounds; r++) {
        bad += one_round(r);
        scrub_stack();
        if (collect && arenashim_collect)
            arenashim_collect();
    }
    CHECK(bad == 0);
    if (shim_present() && collect) {
        long long reused = stats_counter("chunks_reused");
        CHECKF(reused > 0, "chunks_reused = %lld: no chunk came back after a scan", reused);
    }
    return finish("reuse");
}
