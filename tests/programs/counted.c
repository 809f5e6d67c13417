/*
 * counted.c — a known number of regions and allocations, for the statistics.
 *
 *   counted REGIONS ALLOCS_PER_REGION ARENA_ALLOCS [open]
 *
 * Runs REGIONS API regions, each making ALLOCS_PER_REGION 32-byte allocations (kept until
 * the region ends), then, when ARENA_ALLOCS > 0, one explicit arena with that many 32-byte
 * allocations.  With "open", one more region with ALLOCS_PER_REGION allocations is left open
 * when main returns.  The runner compares the stats_json figures with these numbers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

int main(int argc, char **argv)
{
    int regions = argc > 1 ? atoi(argv[1]) : 10;
    int per_region = argc > 2 ? atoi(argv[2]) : 10;
    int arena_allocs = argc > 3 ? atoi(argv[3]) : 0;
    static void *kept[100000];
    if (per_region > 100000)
        per_region = 100000;
    for (int r = 0; r < regions; r++) {
        region_begin();
        for (int i = 0; i < per_region; i++) {
            kept[i] = malloc(32);
            memset(kept[i], r, 32);
        }
        for (int i = 0; i < per_region; i++)
            CHECK(((unsigned char *)kept[i])[31] == (unsigned char)r);
        if (per_region > 0 && shim_present())
            CHECK(in_region(kept[0]));
        region_end();
    }
    if (arena_allocs > 0 && arenashim_arena_new) {
        arenashim_arena *arena = arenashim_arena_new();
        CHECK(arena != NULL);
        for (int i = 0; i < arena_allocs; i++) {
            char *p = arenashim_arena_alloc(arena, 32, i % 2 ? 64 : 0);
            CHECK(p != NULL);
            if (p) {
                CHECK(((uintptr_t)p & (i % 2 ? 63 : 15)) == 0);
                memset(p, i, 32);
            }
        }
        arenashim_arena_free(arena);
    }
    if (argc > 4 && strcmp(argv[4], "open") == 0) {
        region_begin();
        for (int i = 0; i < per_region; i++) {
            kept[i] = malloc(32);
            memset(kept[i], 1, 32);
        }
        if (per_region > 0 && shim_present())
            CHECK(in_region(kept[0]));
    }
    return finish("counted");
}
