/*
 * sparse.c — a huge, mostly untouched mapping costs the scan almost nothing.
 *
 * A 16 GiB anonymous PROT_READ|PROT_WRITE MAP_NORESERVE mapping with eight touched pages,
 * the last of which holds the only pointer to a dead chunk.  A scan must find that pointer
 * (the chunk is kept), must not read the untouched pages (VmRSS and page tables, VmPTE, grow
 * by at most a few MiB; scan_bytes grows far less than 16 GiB) and must be quick.  Once the
 * pointer is cleared the chunk is released.
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

int main(void)
{
    su_require_shim();
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

    su_stats_refresh();
    unsigned long long scan_bytes = su_json_number("scan_bytes");
    long rss = status_kib("VmRSS"), pte = status_kib("VmPTE");
    double start = su_now();
    su_collect_clean();
    double elapsed = su_now() - start;
    long rss_after = status_kib("VmRSS"), pte_after = status_kib("VmPTE");
    char kind[32];
    CHECK(su_kept_kind(dead, kind, sizeof kind), "the pointer in a touched page of the sparse mapping "
          "did not keep its chunk");
    unsigned long long scan_bytes_after = su_json_number("scan_bytes");
    printf("scan: %.3f s, VmRSS %ld -> %ld KiB, VmPTE %ld -> %ld KiB, scan_bytes +%llu\n", elapsed, rss,
           rss_after, pte, pte_after, scan_bytes_after - scan_bytes);
    CHECK(rss_after - rss < 4096, "VmRSS grew by %ld KiB during the scan", rss_after - rss);
    CHECK(pte_after - pte < 4096, "VmPTE grew by %ld KiB during the scan", pte_after - pte);
    CHECK(scan_bytes_after - scan_bytes < ((unsigned long long)1 << 30),
          "scan_bytes grew by %llu for a 16 GiB mapping with %d touched pages",
          scan_bytes_after - scan_bytes, TOUCHED);
    CHECK(elapsed < 2.0, "the scan took %.2f s", elapsed);

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
