/*
 * sparse.c — a huge, mostly untouched mapping costs the scan almost nothing.
 *
 * A 16 GiB anonymous PROT_READ|PROT_WRITE MAP_NORESERVE mapping with eight touched pages,
 * the last of which holds the only pointer to a dead chunk.  A scan must find that pointer
 * (the chunk is kept) and must not read the untouched pages: VmRSS and page tables (VmPTE)
 * grow by at most a few MiB, and the bytes the scan read (scan_bytes) exceed those of a scan
 * of the same process before the mapping existed by no more than the touched pages (each at
 * most a 2 MiB huge page) and a little slack.  Once the pointer is cleared the chunk is
 * released.  How fast the scan is belongs to bench/, not here.
 */
#include "scanutil.h"

#include <sys/mman.h>

#define SPARSE_BYTES ((size_t)16 << 30)
#define TOUCHED 8

static volatile uintptr_t *sparse_slot;
static void store_sparse(uintptr_t v) { *sparse_slot = v; }

static long status_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long value = -1;
    size_t len = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, len) == 0 && line[len] == ':')
            value = strtol(line + len + 1, NULL, 10);
    if (f)
        fclose(f);
    return value;
}

/* The bytes one clean scan reads. */
static unsigned long long scan_read(void)
{
    unsigned long long before = su_stat("scan_bytes"), scans = su_json_number("scans");
    su_collect_clean();
    su_stats_refresh();
    CHECK(su_json_number("scans") == scans + 1, "a collect ran %llu scans, not one",
          su_json_number("scans") - scans);
    return su_json_number("scan_bytes") - before;
}

int main(void)
{
    su_require_shim();
    /* A scan reads only with something in quarantine: one dead chunk, nothing pointing to it. */
    su_make_dead(SPAN_OBJECT_BYTES, 0, NULL, NULL);
    unsigned long long without = scan_read();
    char *area = mmap(NULL, SPARSE_BYTES, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (area == MAP_FAILED) {
        printf("FAILED: mmap 16 GiB: %s\n", strerror(errno));
        return 3;
    }
    for (int i = 0; i < TOUCHED; i++)
        area[(size_t)i * (SPARSE_BYTES / TOUCHED) + (size_t)i * 4096 + 123] = 1;
    sparse_slot = (volatile uintptr_t *)(area + (size_t)(TOUCHED - 1) * (SPARSE_BYTES / TOUCHED) +
                                         (size_t)(TOUCHED - 1) * 4096 + 1024);
    uintptr_t dead = su_make_dead(SPAN_OBJECT_BYTES, 0, store_sparse, NULL);

    long rss = status_kib("VmRSS"), pte = status_kib("VmPTE");
    unsigned long long with = scan_read();
    long rss_after = status_kib("VmRSS"), pte_after = status_kib("VmPTE");
    char kind[32];
    CHECK(su_kept_kind(dead, kind, sizeof kind), "the pointer in a touched page of the sparse mapping "
          "did not keep its chunk");
    printf("scan: VmRSS %ld -> %ld KiB, VmPTE %ld -> %ld KiB, scan_bytes %llu before the mapping, "
           "%llu with it\n", rss, rss_after, pte, pte_after, without, with);
    CHECK(rss_after - rss < 4096, "VmRSS grew by %ld KiB during the scan", rss_after - rss);
    CHECK(pte_after - pte < 4096, "VmPTE grew by %ld KiB during the scan", pte_after - pte);
    CHECK(without > 0, "the scan before the mapping read nothing (scan_bytes did not grow)");
    /* The touched pages, each at most a 2 MiB transparent huge page, and 4 MiB of slack for
     * what else the process gained meanwhile; reading the mapping page by page is 16 GiB. */
    const unsigned long long allowed = (unsigned long long)TOUCHED * (2 << 20) + (4 << 20);
    CHECK(with <= without + allowed,
          "the scan read %llu bytes, %llu more than before the 16 GiB mapping with %d touched pages "
          "(at most %llu expected): untouched pages were read", with, with - without, TOUCHED, allowed);

    *sparse_slot = 0;
    unsigned long long released = su_stat("chunks_released");
    su_collect_clean();
    CHECK(!su_kept_kind(dead, kind, sizeof kind), "the chunk was kept after its pointer was cleared");
    CHECK(su_json_number("chunks_released") > released, "nothing released after clearing");
    munmap(area, SPARSE_BYTES);
    su_print_stats("end");
    printf("DONE failures=%d\n", su_failures);
    return su_failures ? 1 : 0;
}
