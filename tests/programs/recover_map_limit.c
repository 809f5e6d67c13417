/*
 * recover_map_limit.c — on_dangling=recover in a process that has used up its kernel
 * mappings (vm.max_map_count).
 *
 *     recover_map_limit LEAVE REGIONS
 *
 * Uses up its mappings but about LEAVE, then runs REGIONS regions (the API), each keeping one
 * 100-byte object filled with a pattern, and after the last one reads every other object
 * back: each read is a dangling access, and recover mode reports it, makes the page
 * accessible again and goes on.  A page made accessible between dead ones splits a mapping in
 * three; once the limit is reached the kernel refuses, and the process died of the access
 * (found by tests/peer: Python's test_pickle and test_compile with PYTHONMALLOC=malloc).
 * Then REGIONS more regions, each object read right after its region ended, at the limit.
 * Prints "OK recover_map_limit GOOD/READ GOOD/REGIONS" (objects whose pattern was intact,
 * objects read, for each part): the same as without arenashim.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "testutil.h"

#define OBJECT_BYTES 100

static long count_mappings(void)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    long lines = 0;
    int c;
    while (maps && (c = fgetc(maps)) != EOF)
        lines += c == '\n';
    if (maps)
        fclose(maps);
    return lines;
}

int main(int argc, char **argv)
{
    long leave = argc > 1 ? atol(argv[1]) : 100;
    int regions = argc > 2 ? atoi(argv[2]) : 2000;
    unsigned char **kept = calloc((size_t)regions, sizeof *kept);
    long max = 0;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (kept == NULL || f == NULL || fscanf(f, "%ld", &max) != 1)
        return 3;
    fclose(f);
    /* Every other page of one reservation made readable: each one two more mappings. */
    long want = (max - count_mappings() - leave) / 2;
    char *area = mmap(NULL, (size_t)want * 2 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (area == MAP_FAILED)
        return 3;
    for (long i = 0; i < want; i++)
        if (mprotect(area + i * 2 * 4096, 4096, PROT_READ) != 0)
            break;
    for (int r = 0; r < regions; r++) {
        region_begin();
        kept[r] = opaque_ptr(malloc(OBJECT_BYTES));
        fill_pattern(kept[r], OBJECT_BYTES, (unsigned)r);
        region_end();
    }
    int good = 0, read = 0;
    for (int r = 0; r < regions; r += 2, read++)
        good += check_pattern(kept[r], OBJECT_BYTES, (unsigned)r);
    /* Then, at the limit, each object is read right after its region: the region's pages
     * follow a page made accessible by the read before, and protecting them would split a
     * mapping, which the kernel refuses.  They were discarded then, and read back as zeroes. */
    int good_after = 0;
    for (int r = 0; r < regions; r++) {
        region_begin();
        unsigned char *object = opaque_ptr(malloc(OBJECT_BYTES));
        fill_pattern(object, OBJECT_BYTES, (unsigned)r + 7);
        region_end();
        good_after += check_pattern(object, OBJECT_BYTES, (unsigned)r + 7);
    }
    printf("OK recover_map_limit %d/%d %d/%d\n", good, read, good_after, regions);
    return 0;
}
