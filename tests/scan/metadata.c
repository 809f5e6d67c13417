/*
 * metadata.c — the scan must skip arenashim's own metadata, and only that.
 *
 * mode "stale": the scan maps temporary buffers of its own (metadata, skipped by the scan)
 * and unmaps them when it is done.  A mapping the program makes right after a scan is often
 * placed by the kernel exactly where such a buffer was.  For each size from 1 to 32 pages,
 * one scan runs, then a mapping of that size is made, and a pointer to a fresh dead chunk is
 * stored in its last word (the top-down allocator puts a mapping of the buffer's own size
 * exactly in its place).  Every one of these chunks must be kept by the scans that follow; once
 * the words are cleared, every one must be released.
 *
 * mode "full": after many scans (each maps a temporary buffer), arenashim's records of its
 * own metadata must still cover new metadata: thousands of small regions then leave dead-range
 * records (which name chunk addresses) in fresh metadata blocks; a scan must release every
 * chunk those regions quarantined, since nothing of the program points into them.
 */
#include "scanutil.h"

#include <sys/mman.h>

#define SIZES 32
#define PAGE 4096

static volatile uintptr_t *current_slot;
static void store_current(uintptr_t v) { *current_slot = v; }

static uint32_t dead[SIZES + 1];
static volatile uintptr_t *areas[SIZES + 1];

static int chunk_is_dead(uint32_t chunk)
{
    for (int s = 1; s <= SIZES; s++)
        if (dead[s] == chunk)
            return s;
    return 0;
}

/* Probes every available chunk; reports the dead chunks a new allocation landed in. */
NOINLINE static unsigned probe_dead(const char *phase, int expect_hits)
{
    unsigned count = su_probe_count();
    su_probe(0, 0, count);
    unsigned hits = 0;
    for (unsigned i = 0; i < count; i++) {
        int s = chunk_is_dead(su_probe_chunks[i]);
        if (s == 0)
            continue;
        hits++;
        if (!expect_hits)
            CHECK(0, "%s: the pointer stored in the last word of a %d-page mapping made right "
                  "after a scan, at %p, did not keep its chunk (reused by a new region)",
                  phase, s, (void *)&areas[s][s * PAGE / sizeof(uintptr_t) - 1]);
    }
    return hits;
}

NOINLINE static void run_stale(void)
{
    su_make_dead(SPAN_OBJECT_BYTES, 0, NULL, NULL); /* so that the first scan has work to do */
    unsigned collisions = 0;
    for (int s = 1; s <= SIZES; s++) {
        su_collect_clean();
        size_t bytes = (size_t)s * PAGE;
        void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            printf("FAILED: mmap: %s\n", strerror(errno));
            exit(3);
        }
        areas[s] = p;
        current_slot = &areas[s][bytes / sizeof(uintptr_t) - 1];
        uint32_t chunk = (uint32_t)su_make_dead(SPAN_OBJECT_BYTES, 0, store_current, NULL);
        /* Every earlier dead chunk is still referenced: a new region must not get one. */
        int earlier = 0;
        for (int e = s - 1; e >= 1 && earlier == 0; e--)
            if (dead[e] == chunk)
                earlier = e;
        if (earlier && collisions++ == 0)
            CHECK(0, "step %d: a new region got the chunk still referenced from the last word of "
                  "the %d-page mapping made right after a scan, at %p: a scan did not see that "
                  "word", s, earlier, (void *)&areas[earlier][earlier * PAGE / sizeof(uintptr_t) - 1]);
        dead[s] = chunk;
    }
    CHECK(collisions == 0, "%u of %d chunks were handed out again while still referenced", collisions,
          SIZES);
    for (int round = 0; round < 2; round++) {
        su_collect_clean();
        probe_dead(round ? "round 1" : "round 0", 0);
    }
    unsigned distinct = 0;
    for (int s = 1; s <= SIZES; s++)
        distinct += chunk_is_dead(dead[s]) == s;
    unsigned long long released = su_stat("chunks_released");
    for (int s = 1; s <= SIZES; s++)
        areas[s][(size_t)s * PAGE / sizeof(uintptr_t) - 1] = 0;
    su_collect_clean();
    unsigned long long released_after = su_stat("chunks_released");
    CHECK(released_after >= released + distinct, "after clearing: chunks_released %llu -> %llu, "
          "expected +%u at least", released, released_after, distinct);
    unsigned long long kept = su_json_number("scan_chunks_kept_last");
    CHECK(kept == 0, "after clearing, the scan kept %llu chunks: %s", kept, strstr(su_json, "\"scan_kept\""));
    unsigned hits = probe_dead("cleared", 1);
    CHECK(hits == distinct, "after clearing, new regions reused %u of the %u freed chunks", hits, distinct);
}

static volatile uintptr_t pinned_slot;
static void store_pinned(uintptr_t v) { pinned_slot = v; }

NOINLINE static void small_regions(unsigned count)
{
    for (unsigned i = 0; i < count; i++) {
        arenashim_region_begin();
        char *volatile p = malloc(100);
        p[0] = (char)i;
        p = NULL;
        arenashim_region_end();
    }
}

NOINLINE static void run_full(unsigned scans, unsigned regions)
{
    /* A chunk kept by a pointer in .data: every scan finds quarantine non-empty. */
    uintptr_t pinned = su_make_dead(SPAN_OBJECT_BYTES, 0, store_pinned, NULL);
    double start = su_now();
    for (unsigned i = 0; i < scans; i++)
        arenashim_collect();
    unsigned long long done = su_stat("scans");
    printf("%llu scans in %.2f s\n", done, su_now() - start);
    CHECK(done >= scans, "only %llu of %u scans ran", done, scans);

    small_regions(regions);
    unsigned long long quarantined = su_stat("quarantine_bytes") >> CHUNK_SHIFT;
    printf("%u small regions quarantined %llu chunks (the pinned one included)\n", regions,
           quarantined);
    su_collect_clean();
    char kind[32];
    CHECK(su_kept_kind(pinned, kind, sizeof kind), "the pinned chunk was released");
    unsigned long long kept = su_json_number("scan_chunks_kept_last");
    CHECK(kept == 1, "the scan kept %llu chunks, only the pinned one expected; kept: %s", kept,
          strstr(su_json, "\"scan_kept\""));
    pinned_slot = 0;
}

int main(int argc, char **argv)
{
    su_require_shim();
    if (argc >= 2 && strcmp(argv[1], "stale") == 0)
        run_stale();
    else if (argc >= 2 && strcmp(argv[1], "full") == 0)
        run_full(argc >= 3 ? (unsigned)atoi(argv[2]) : 1200, argc >= 4 ? (unsigned)atoi(argv[3]) : 3000);
    else {
        printf("usage: metadata stale|full [SCANS REGIONS]\n");
        return 3;
    }
    su_print_stats("end");
    printf("DONE failures=%d\n", su_failures);
    return su_failures ? 1 : 0;
}
