/*
 * exclude_probe.c — which callers' allocations go to the region?
 *
 * Linked with -lexclprobe, -L and -rpath BUILD/tests/integration (tests/integration/meson.build).
 *
 * Inside one region: the program's own malloc, asprintf and getline (the C library calls
 * malloc itself) and exclprobe_alloc (libexclprobe.so calls malloc).  Prints, for each,
 * whether the result is a region object, and how many region allocations were counted:
 *
 *   own=1 asprintf=0 getline=0 lib=1 allocs=2      (defaults: libc excluded)
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

void *exclprobe_alloc(size_t size);

int main(int argc, char **argv)
{
    (void)argc;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("start\n"); /* stdio's buffer exists before the region */
    FILE *f = fopen(argv[0], "r");
    if (f == NULL) {
        printf("cannot open %s\n", argv[0]);
        return 1;
    }
    char first[16];
    if (fread(first, 1, sizeof first, f) != sizeof first) /* the FILE's buffer, too */
        return 1;
    long long before = stats_counter("region_allocs");

    region_begin();
    char *own = malloc(100);
    memset(own, 1, 100);
    char *formatted = NULL;
    int len = asprintf(&formatted, "%s-%d-%0200d", "formatted", 42, 7);
    char *line = NULL;
    size_t capacity = 0;
    ssize_t got = getline(&line, &capacity, f);
    char *lib = exclprobe_alloc(64);
    int own_in = in_region(own), asprintf_in = in_region(formatted), getline_in = in_region(line),
        lib_in = in_region(lib);
    int ok = len > 200 && got > 0 && lib != NULL && own != NULL;
    free(own);
    free(formatted);
    free(line);
    free(lib);
    region_end();

    fclose(f);
    long long after = stats_counter("region_allocs");
    if (!ok)
        printf("a call failed\n");
    printf("own=%d asprintf=%d getline=%d lib=%d allocs=%lld\n", own_in, asprintf_in, getline_in,
           lib_in, after - before);
    return ok ? 0 : 1;
}
