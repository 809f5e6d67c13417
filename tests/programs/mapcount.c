/*
 * mapcount.c — many regions must not leave the process with many kernel mappings.
 *
 *   mapcount REGIONS
 *
 * Every boundary between faulted and live memory is a separate mapping, and the kernel
 * allows about 65530 (vm.max_map_count); a long-running program with many regions must stay
 * far below that.  Runs REGIONS regions of varied sizes (small objects, page-crossing ones,
 * an occasional multi-chunk object, occasional scans) and prints the number of lines in
 * /proc/self/maps before, after a quarter of the regions and at the end:
 * "maps BEFORE QUARTER AFTER".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static int count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return -1;
    int lines = 0, c;
    while ((c = fgetc(f)) != EOF)
        lines += c == '\n';
    fclose(f);
    return lines;
}

int main(int argc, char **argv)
{
    int regions = argc > 1 ? atoi(argv[1]) : 50000;
    int before = count_maps();
    unsigned long long rng = 0x853c49e6748fea9bull;
    int quarter = -1;
    for (int r = 0; r < regions; r++) {
        if (r == regions / 4)
            quarter = count_maps();
        region_begin();
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        unsigned kind = (unsigned)(rng >> 60);
        size_t n = kind < 10 ? 16 + (rng >> 40) % 300 : kind < 15 ? 3000 + (rng >> 40) % 20000 : 1500000;
        unsigned count = 1 + (unsigned)((rng >> 20) % 8);
        for (unsigned i = 0; i < count; i++) {
            char *p = malloc(n);
            if (p)
                memset(p, 1, n < 64 ? n : 64), p[n - 1] = 2;
        }
        region_end();
        if (r % 5000 == 4999 && arenashim_collect)
            arenashim_collect();
    }
    int after = count_maps();
    printf("maps %d %d %d\n", before, quarter, after);
    CHECK(after > 0);
    return finish("mapcount");
}
