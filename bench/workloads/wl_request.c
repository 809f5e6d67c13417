/*
 * wl_request.c — a server's request loop, single-threaded: for each of N requests (default
 * 20000), make the request text (outside the handler), then handle_request() parses it into a
 * tree of small objects, renders a response, checksums and frees it (request.c).  Mark
 * handle_request to give each request a region.
 *
 *     wl_request [N] [--leak] [--rss-every K]
 *
 *   --leak          the leaky handler: the retry path (about 1 request in 6) forgets to free
 *                   the parsed JSON body (several KiB); the heap grows under any malloc.
 *   --rss-every K   print "rss <requests done> <KiB>" on stderr every K requests.
 *
 * Prints "checksum <hex>" on stdout, the same whatever the allocator and whether or not it
 * leaks, and "loop_ns", "start_rss_kib" and "peak_rss_kib" lines on stderr (common.h).
 */
#include "request.h"

int main(int argc, char **argv)
{
    struct options o = { .count = 20000 };
    if (!parse_options(argc, argv, &o) || o.threads) {
        fprintf(stderr, "usage: wl_request [N] [--leak] [--rss-every K]\n");
        return 2;
    }
    leaky_handler = o.leak;
    struct text request = { 0 };
    uint64_t checksum = FNV_START;
    report_start_rss();
    uint64_t start = now_ns();
    if (o.rss_every)
        report_rss(0);
    for (unsigned long i = 0; i < o.count; i++) {
        make_request(&request, i);
        uint64_t sum = handle_request(request.data, request.len);
        checksum = (checksum ^ sum) * 0x100000001b3ull;
        if (o.rss_every && (i + 1) % o.rss_every == 0)
            report_rss(i + 1);
    }
    report_loop(now_ns() - start);
    report_peak_rss();
    free(request.data);
    printf("checksum %016llx\n", (unsigned long long)checksum);
    return 0;
}
