/*
 * dl.c — loads libmkplugin.so with dlopen and calls its functions, for the MODULE:FUNC
 * marker tests.  Knows nothing about arenashim.
 *
 * Usage: dl PLUGIN MODE [N] [K]
 *   calls     N calls of plugin_work(i, K)
 *   escape    one call leaks an object; it is read after the return
 *   inregion  dlopen happens inside a marked function of this program (load_in_region);
 *             the constructor's allocation must outlive it
 *   short     calls plugin_short (which the marker test wants refused, not fatal)
 *   dep       PLUGIN is libmkdep.so, whose dependency libmkshared.so arrives with it:
 *             N calls of dep_work(i, K)
 *   reload    N rounds of: dlopen, K calls of plugin_work, dlclose (checked unloaded)
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *handle;
static void *volatile keep;

__attribute__((noinline, noclone)) void *load_in_region(const char *path)
{
    keep = malloc(32); /* a region object, if the marker works */
    void *h = dlopen(path, RTLD_NOW);
    return h;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: dl PLUGIN MODE [N] [K]\n");
        return 64;
    }
    const char *mode = argv[2];
    int n = argc > 3 ? atoi(argv[3]) : 10;
    int k = argc > 4 ? atoi(argv[4]) : 4;
    if (strcmp(mode, "dep") == 0) {
        /* PLUGIN is libmkdep.so here. */
        void *dep = dlopen(argv[1], RTLD_NOW);
        if (dep == NULL) {
            fprintf(stderr, "dlopen: %s\n", dlerror());
            return 4;
        }
        long (*dep_work)(int, int) = (long (*)(int, int))dlsym(dep, "dep_work");
        long total = 0;
        for (int i = 0; i < n; i++)
            total += dep_work(i, k);
        printf("dep calls=%d objects=%d total=%ld\n", n, k, total);
        return 0;
    }
    if (strcmp(mode, "reload") == 0) {
        long total = 0;
        for (int round = 0; round < n; round++) {
            void *h = dlopen(argv[1], RTLD_NOW);
            if (h == NULL) {
                fprintf(stderr, "dlopen: %s\n", dlerror());
                return 4;
            }
            long (*work)(int, int, int) = (long (*)(int, int, int))dlsym(h, "plugin_work");
            for (int i = 0; i < k; i++)
                total += work(i, 3, 0);
            dlclose(h);
            if (dlopen(argv[1], RTLD_NOW | RTLD_NOLOAD) != NULL) {
                fprintf(stderr, "the plugin stayed loaded after dlclose\n");
                return 5;
            }
        }
        printf("reload rounds=%d calls=%d total=%ld\n", n, k, total);
        return 0;
    }
    printf("before dlopen\n");
    fflush(stdout);
    handle = strcmp(mode, "inregion") == 0 ? load_in_region(argv[1]) : dlopen(argv[1], RTLD_NOW);
    if (handle == NULL) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 4;
    }
    long (*work)(int, int, int) = (long (*)(int, int, int))dlsym(handle, "plugin_work");
    const char *(*constructed)(void) = (const char *(*)(void))dlsym(handle, "plugin_constructed");
    int (*short_fn)(void) = (int (*)(void))dlsym(handle, "plugin_short");
    void *volatile *escaped = (void *volatile *)dlsym(handle, "plugin_escaped");
    if (!work || !constructed || !short_fn || !escaped) {
        fprintf(stderr, "dlsym failed\n");
        return 4;
    }
    if (strcmp(mode, "calls") == 0 || strcmp(mode, "inregion") == 0) {
        long total = 0;
        for (int i = 0; i < n; i++)
            total += work(i, k, 0);
        printf("calls=%d objects=%d total=%ld constructed='%s'\n", n, k, total, constructed());
        return 0;
    }
    if (strcmp(mode, "escape") == 0) {
        long total = work(1, k, 1);
        printf("total=%ld\n", total);
        fflush(stdout);
        printf("read after return: %d\n", ((volatile char *)*escaped)[0]);
        return 0;
    }
    if (strcmp(mode, "short") == 0) {
        int s = 0;
        for (int i = 0; i < n; i++)
            s += short_fn();
        printf("short sum=%d\n", s);
        return 0;
    }
    fprintf(stderr, "unknown mode %s\n", mode);
    return 64;
}
