/*
 * dlpath.c — dlopen by bare file name, found through a RUNPATH, for the marker tests.
 * Knows nothing about arenashim.
 *
 * The dynamic linker searches a bare name along the RUNPATH of the object that called
 * dlopen, which it finds from dlopen's return address; a hook that changed that address
 * made these loads fail ("cannot open shared object file").  Built with RUNPATH $ORIGIN and
 * linked with libmkloader.so, whose own RUNPATH is $ORIGIN/plugins.
 *
 * Usage: dlpath MODE NAME [N]
 *   exe      dlopen(NAME) from this executable, then N calls of plugin_work
 *   marked   the same from load_and_use (a function the tests mark): allocations after the
 *            dlopen, in the same call, and the constructor's object that must outlive it
 *   lib      NAME is loaded by libmkloader.so's loader_open (the library's RUNPATH)
 *   dlmopen  dlmopen(LM_ID_BASE, NAME) from this executable
 */
#define _GNU_SOURCE /* dlmopen */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *loader_open(const char *name); /* libmkloader.so */

static long (*plugin_work)(int, int, int);
static const char *(*plugin_constructed)(void);

static int bind(void *handle)
{
    if (handle == NULL) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 0;
    }
    *(void **)&plugin_work = dlsym(handle, "plugin_work");
    *(void **)&plugin_constructed = dlsym(handle, "plugin_constructed");
    if (plugin_work == NULL || plugin_constructed == NULL) {
        fprintf(stderr, "dlsym failed\n");
        return 0;
    }
    return 1;
}

__attribute__((noinline, noclone)) long load_and_use(const char *name, int n)
{
    char *before = malloc(32);
    strcpy(before, "before");
    if (!bind(dlopen(name, RTLD_NOW)))
        exit(4);
    long total = 0;
    for (int i = 0; i < n; i++) {
        char *after = malloc(48);
        snprintf(after, 48, "%s-%d", before, i);
        total += (long)strlen(after);
        free(after);
    }
    free(before);
    return total;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: dlpath exe|marked|lib|dlmopen NAME [N]\n");
        return 64;
    }
    const char *mode = argv[1], *name = argv[2];
    int n = argc > 3 ? atoi(argv[3]) : 10;
    long total = 0;
    if (strcmp(mode, "marked") == 0) {
        total = load_and_use(name, n);
    } else {
        void *handle = strcmp(mode, "lib") == 0       ? loader_open(name)
                       : strcmp(mode, "dlmopen") == 0 ? dlmopen(LM_ID_BASE, name, RTLD_NOW)
                                                      : dlopen(name, RTLD_NOW);
        if (!bind(handle))
            return 4;
    }
    for (int i = 0; i < n; i++)
        total += plugin_work(i, 3, 0);
    printf("%s %s: total=%ld constructed='%s'\n", mode, name, total, plugin_constructed());
    return 0;
}
