/*
 * soak.c — a long-running service in miniature, for the soak test (issue 14): does anything
 * pile up when regions, scans, forks and library reloads go on and on?  Knows nothing of
 * arenashim but the weak API of include/arenashim.h (it runs plainly too).
 *
 *     soak REGIONS THREADS CYCLES FORKS PLUGIN [CALLS]
 *
 * THREADS worker threads run REGIONS regions in all (arenashim_region_begin/end around a few
 * linked small objects; every 64th region about 64 KiB, every 256th one with a 600 KiB
 * object: chunks retire and spans come and go), split evenly over CYCLES cycles.  In each
 * cycle, while the workers run, the main thread
 *   - loads PLUGIN (libsoakplugin.so) with dlopen, calls its soak_plugin_work CALLS (10) times
 *     and unloads it: with ARENASHIM_REGIONS=libsoakplugin.so:soak_plugin_work each call is a
 *     region only if the marker was hooked again after this load, which the program checks
 *     in the statistics (arenashim_stats_json: the marker's "regions" grew by CALLS);
 *   - runs an explicit scan (arenashim_collect);
 *   - in FORKS of the cycles, spread evenly, forks a child that loads the plugin itself, makes
 *     the same check, runs 200 regions and exits (status 0 when all was well).
 * After each cycle, with the workers idle, one line:
 *   CHECKPOINT cycle=C regions=R maps=M rss_kib=K fds=F marker_regions=N forks_ok=F
 *              seconds=S metadata_bytes=... kernel_mappings=... quarantine_bytes=... scans=...
 *              chunks_released=... regions_begun=... regions_ended=...
 * maps: lines of /proc/self/maps; fds: entries of /proc/self/fd; marker_regions: the marker's
 * regions in this cycle (-1 without the API).  At the end "RESULT checksum=... regions=...
 * forks_ok=F/F" (the same plain and preloaded) and, with the API, "MARKER hooked_cycles=C/C".
 *
 * SOAK_LEAK=fd or SOAK_LEAK=map makes the program leak one descriptor, or one kernel mapping,
 * per cycle: how the soak test's bounds were checked to catch a leak of that size.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "arenashim.h"

#define OPAQUE(p) __asm__ volatile("" : : "g"(p) : "memory")
#define MARKER_SPEC "libsoakplugin.so:soak_plugin_work"
#define CHILD_REGIONS 200

static int api_present(void)
{
    return arenashim_region_begin && arenashim_region_end && arenashim_collect && arenashim_stats_json;
}

static uint64_t xorshift64(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- the statistics ---------------------------------------------------------------------- */

/* The statistics JSON, malloc'd (outside any region); NULL without the preload. */
static char *stats_take(void)
{
    if (!arenashim_stats_json)
        return NULL;
    size_t len = arenashim_stats_json(NULL, 0) + 4096; /* it may grow between the calls */
    char *json = malloc(len);
    if (json)
        arenashim_stats_json(json, len);
    return json;
}

/* A top-level counter; -1 when missing (a renamed key shows, it does not read as 0). */
static long long stat_of(const char *json, const char *key)
{
    char pattern[80];
    snprintf(pattern, sizeof pattern, "\"%s\": ", key);
    const char *at = json ? strstr(json, pattern) : NULL;
    return at ? strtoll(at + strlen(pattern), NULL, 10) : -1;
}

/* The "regions" of the marker MARKER_SPEC; -1 when it is not listed. */
static long long marker_regions(void)
{
    char *json = stats_take();
    long long regions = -1;
    const char *spec = json ? strstr(json, "\"spec\": \"" MARKER_SPEC "\"") : NULL;
    const char *at = spec ? strstr(spec, "\"regions\": ") : NULL;
    if (at)
        regions = strtoll(at + strlen("\"regions\": "), NULL, 10);
    free(json);
    return regions;
}

/* --- the process --------------------------------------------------------------------------- */

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    long count = 0;
    if (d == NULL)
        return -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        count += e->d_name[0] != '.';
    closedir(d);
    return count - 1; /* opendir's own */
}

static long maps_lines(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    long count = 0;
    int c;
    if (f == NULL)
        return -1;
    while ((c = getc_unlocked(f)) != EOF)
        count += c == '\n';
    fclose(f);
    return count;
}

/* --- the work -------------------------------------------------------------------------------- */

/* One region: a few linked objects of 16-255 bytes, half of them freed; every 64th region 512
 * of them (about 64 KiB), every 256th also one object of 600 KiB (a span of whole chunks). */
__attribute__((noinline)) static uint64_t region_body(uint64_t *state, uint64_t number)
{
    uint64_t r = xorshift64(state), sum = 0;
    unsigned count = number % 64 == 63 ? 512 : 4 + (unsigned)(r & 7);
    uint64_t *objects[512];
    for (unsigned i = 0; i < count; i++) {
        size_t size = 16 + (size_t)((r >> (8 + (i % 12) * 4)) & 0xf0) + (i & 15);
        uint64_t *p = malloc(size);
        if (p == NULL)
            abort();
        p[0] = (uint64_t)(uintptr_t)(i ? objects[i - 1] : NULL); /* pointer-dense, as trees are */
        p[1] = r + i;
        sum += p[1];
        objects[i] = p;
    }
    OPAQUE(objects[count - 1]);
    for (unsigned i = 0; i < count; i += 2)
        free(objects[i]);
    if (number % 256 == 255) {
        char *big = malloc(600 << 10);
        if (big == NULL)
            abort();
        for (size_t at = 0; at < (600 << 10); at += 4096)
            big[at] = (char)at;
        sum += (unsigned char)big[4096];
        free(big);
    }
    return sum;
}

static uint64_t one_region(uint64_t *state, uint64_t number)
{
    if (arenashim_region_begin)
        arenashim_region_begin();
    uint64_t sum = region_body(state, number);
    if (arenashim_region_end)
        arenashim_region_end();
    return sum;
}

static pthread_barrier_t cycle_start, cycle_end;
static unsigned thread_count, cycle_count;
static uint64_t regions_total;
static uint64_t worker_sums; /* atomic */

static uint64_t share(unsigned cycle, unsigned thread)
{
    uint64_t per_cycle = regions_total / cycle_count + (cycle < regions_total % cycle_count);
    return per_cycle / thread_count + (thread < per_cycle % thread_count);
}

static void *worker(void *arg)
{
    unsigned index = (unsigned)(uintptr_t)arg;
    uint64_t state = 0x9e3779b97f4a7c15ull * (index + 1), sum = 0, number = 0;
    for (unsigned cycle = 0; cycle < cycle_count; cycle++) {
        pthread_barrier_wait(&cycle_start);
        for (uint64_t i = share(cycle, index); i > 0; i--)
            sum += one_region(&state, number++);
        pthread_barrier_wait(&cycle_end);
    }
    __atomic_fetch_add(&worker_sums, sum, __ATOMIC_RELAXED);
    pthread_barrier_wait(&cycle_start); /* alive until the last checkpoint is taken */
    return NULL;
}

/* Loads the plugin, calls its function calls times, unloads it.  *regions: how many regions
 * the marker made meanwhile (-1 without the API).  Returns the calls' sum, or 0 with *failed
 * set when the library cannot be loaded. */
static uint64_t plugin_cycle(const char *path, unsigned calls, unsigned seed, long long *regions, int *failed)
{
    *regions = -1;
    void *library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        fprintf(stderr, "soak: dlopen %s: %s\n", path, dlerror());
        *failed = 1;
        return 0;
    }
    uint64_t (*work)(unsigned) = (uint64_t(*)(unsigned))dlsym(library, "soak_plugin_work");
    if (work == NULL) {
        fprintf(stderr, "soak: no soak_plugin_work in %s\n", path);
        *failed = 1;
        dlclose(library);
        return 0;
    }
    long long before = api_present() ? marker_regions() : -1;
    uint64_t sum = 0;
    for (unsigned i = 0; i < calls; i++)
        sum += work(seed + i);
    long long after = api_present() ? marker_regions() : -1;
    if (before >= 0 && after >= 0)
        *regions = after - before;
    dlclose(library);
    return sum;
}

/* The child of a fork: the plugin once more (hooked in this process too), some regions. */
static void child_run(const char *path, unsigned calls, unsigned cycle)
{
    int failed = 0;
    long long regions;
    uint64_t sum = plugin_cycle(path, calls, 1000 + cycle, &regions, &failed);
    int hooked = !api_present() || regions == (long long)calls;
    uint64_t state = 0x243f6a8885a308d3ull + cycle;
    for (unsigned i = 0; i < CHILD_REGIONS; i++)
        sum += one_region(&state, i);
    OPAQUE(sum);
    exit(failed ? 4 : !hooked ? 3 : 0);
}

int main(int argc, char **argv)
{
    if (argc < 6 || argc > 7) {
        fprintf(stderr, "usage: soak REGIONS THREADS CYCLES FORKS PLUGIN [CALLS]\n");
        return 2;
    }
    regions_total = strtoull(argv[1], NULL, 10);
    thread_count = (unsigned)strtoul(argv[2], NULL, 10);
    cycle_count = (unsigned)strtoul(argv[3], NULL, 10);
    unsigned forks = (unsigned)strtoul(argv[4], NULL, 10);
    const char *plugin = argv[5];
    unsigned calls = argc > 6 ? (unsigned)strtoul(argv[6], NULL, 10) : 10;
    if (thread_count < 1 || thread_count > 256 || cycle_count < 1 || forks > cycle_count || calls < 1) {
        fprintf(stderr, "soak: bad arguments\n");
        return 2;
    }
    const char *leak = getenv("SOAK_LEAK");
    int leak_fd = leak && strcmp(leak, "fd") == 0, leak_map = leak && strcmp(leak, "map") == 0;
    int exe = leak_map ? open("/proc/self/exe", O_RDONLY | O_CLOEXEC) : -1;

    pthread_barrier_init(&cycle_start, NULL, thread_count + 1);
    pthread_barrier_init(&cycle_end, NULL, thread_count + 1);
    pthread_t threads[256];
    for (unsigned t = 0; t < thread_count; t++)
        if (pthread_create(&threads[t], NULL, worker, (void *)(uintptr_t)t) != 0) {
            fprintf(stderr, "soak: pthread_create failed\n");
            return 1;
        }
    printf("# soak: %llu regions, %u threads, %u cycles, %u forks, %u calls a load; api=%s\n",
           (unsigned long long)regions_total, thread_count, cycle_count, forks, calls,
           api_present() ? "yes" : "no");
    fflush(stdout);

    uint64_t plugin_sums = 0, regions_done = 0;
    unsigned forks_done = 0, forks_ok = 0, hooked_cycles = 0, plugin_failures = 0;
    double start = now_seconds();
    for (unsigned cycle = 0; cycle < cycle_count; cycle++) {
        pthread_barrier_wait(&cycle_start);
        int failed = 0;
        long long marker_made;
        plugin_sums += plugin_cycle(plugin, calls, cycle * 7, &marker_made, &failed);
        hooked_cycles += marker_made == (long long)calls;
        plugin_failures += failed;
        if (arenashim_collect)
            arenashim_collect();
        if ((uint64_t)(cycle + 1) * forks / cycle_count > forks_done) {
            forks_done++;
            fflush(stdout);
            pid_t child = fork();
            if (child == 0)
                child_run(plugin, calls, cycle);
            int status = 0;
            if (child > 0 && waitpid(child, &status, 0) == child && WIFEXITED(status) &&
                WEXITSTATUS(status) == 0)
                forks_ok++;
            else
                fprintf(stderr, "soak: cycle %u: the child %s (status %#x)\n", cycle,
                        child < 0 ? "could not be made" : "failed", status);
        }
        if (leak_fd && open("/dev/null", O_RDONLY) < 0)
            perror("soak: leaking a descriptor");
        if (leak_map && mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, exe, 0) == MAP_FAILED)
            perror("soak: leaking a mapping");
        pthread_barrier_wait(&cycle_end);

        for (unsigned t = 0; t < thread_count; t++)
            regions_done += share(cycle, t);
        char *json = stats_take();
        printf("CHECKPOINT cycle=%u regions=%llu maps=%ld rss_kib=%ld fds=%ld marker_regions=%lld "
               "forks_ok=%u seconds=%.3f",
               cycle + 1, (unsigned long long)regions_done, maps_lines(), rss_kib(), open_fds(),
               marker_made, forks_ok, now_seconds() - start);
        static const char *keys[] = { "metadata_bytes", "kernel_mappings", "quarantine_bytes", "scans",
                                      "chunks_released", "regions_begun", "regions_ended" };
        for (unsigned k = 0; k < sizeof keys / sizeof keys[0]; k++)
            printf(" %s=%lld", keys[k], json ? stat_of(json, keys[k]) : -1);
        printf("\n");
        fflush(stdout);
        free(json);
    }
    pthread_barrier_wait(&cycle_start);
    for (unsigned t = 0; t < thread_count; t++)
        pthread_join(threads[t], NULL);
    printf("RESULT checksum=%016llx regions=%llu forks_ok=%u/%u plugin_failures=%u\n",
           (unsigned long long)(worker_sums ^ plugin_sums), (unsigned long long)regions_done, forks_ok,
           forks, plugin_failures);
    if (api_present())
        printf("MARKER hooked_cycles=%u/%u\n", hooked_cycles, cycle_count);
    return plugin_failures || forks_ok != forks ? 1 : 0;
}
