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
    return run_workload(&o, make_request, handle_request);
}
