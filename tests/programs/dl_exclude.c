/*
 * dl_exclude.c — exclude= for a module loaded later by dlopen.
 *
 *   dl_exclude LIBRARY marker|api
 *
 * dlopens LIBRARY (libexclprobe.so: exclprobe_alloc() mallocs on its caller's behalf), then
 * opens one region in which the library allocates an object and the program one of its own:
 *
 *   marker   the region is a call of work() (ARENASHIM_REGIONS=work); the program knows
 *            nothing of arenashim
 *   api      the region is arenashim_region_begin/end (include/arenashim.h; without the
 *            preload there is no region)
 *
 * After the region ended it reads the library's object.  When LIBRARY is excluded the object
 * came from the heap and the read is an ordinary one; otherwise it was a region object and the
 * read is a dangling access (reported; run with on_dangling=recover to go on).  It prints
 * "lib object: 17 17 17 17" (the bytes exclprobe_alloc wrote) either way.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arenashim.h"

static void *(*lib_alloc)(size_t);
static char *own;

__attribute__((noinline)) unsigned char *work(void)
{
    unsigned char *from_lib = lib_alloc(64);
    own = malloc(64);
    if (from_lib == NULL || own == NULL)
        exit(3);
    memset(own, 1, 64);
    return from_lib;
}

/* Named by a marker in the api mode, never called: markers are in use. */
__attribute__((noinline)) void never_called(void)
{
    printf("never_called\n");
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: dl_exclude LIBRARY marker|api\n");
        return 2;
    }
    void *handle = dlopen(argv[1], RTLD_NOW);
    if (handle == NULL) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    *(void **)&lib_alloc = dlsym(handle, "exclprobe_alloc");
    if (lib_alloc == NULL)
        return 1;
    unsigned char *from_lib;
    if (strcmp(argv[2], "api") == 0) {
        if (arenashim_region_begin)
            arenashim_region_begin();
        from_lib = work();
        if (arenashim_region_end)
            arenashim_region_end();
    } else {
        from_lib = work();
    }
    printf("lib object: %d %d %d %d\n", from_lib[0], from_lib[1], from_lib[32], from_lib[63]);
    return 0;
}
