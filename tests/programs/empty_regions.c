/*
 * empty_regions.c — COUNT regions, each allocating BYTES (0: nothing at all).
 *
 *   empty_regions COUNT [BYTES]
 *
 * A region that allocates nothing must cost no system call; the runner counts them with
 * strace for two values of COUNT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

int main(int argc, char **argv)
{
    int count = argc > 1 ? atoi(argv[1]) : 1000;
    size_t bytes = argc > 2 ? (size_t)atol(argv[2]) : 0;
    int depth_ok = 1;
    for (int i = 0; i < count; i++) {
        int depth = region_begin();
        if (shim_present() && depth != 1)
            depth_ok = 0;
        if (bytes) {
            char *p = malloc(bytes);
            memset(p, i, bytes);
            opaque_ptr(p);
        }
        region_end();
    }
    CHECK(depth_ok);
    if (shim_present()) {
        long long begun = stats_counter("regions_begun");
        CHECKF(begun == count, "regions_begun %lld, expected %d", begun, count);
    }
    return finish("empty_regions");
}
