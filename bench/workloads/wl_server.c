/*
 * wl_server.c — a multi-threaded server: T worker threads (default 2) take request numbers
 * from a shared counter, make the request text and handle it with the same handler as
 * wl_request (request.c); each request's checksum is stored at its number, and the program's
 * checksum combines them in order, so it does not depend on which thread took which request.
 * Mark handle_request to give each request a region on the thread that handles it.
 *
 *     wl_server [N] [--threads T] [--leak] [--rss-every K]
 *
 * Prints "checksum <hex>" on stdout and "loop_ns", "start_rss_kib" and "peak_rss_kib" lines on
 * stderr (common.h).
 */
#include <pthread.h>
#include <stdatomic.h>

#include "request.h"

static unsigned long total;
static atomic_ulong next_request;
static atomic_ulong done_requests;
static uint64_t *sums;
static unsigned long rss_every;

static void *worker(void *arg)
{
    (void)arg;
    struct text request = { 0 };
    for (;;) {
        unsigned long i = atomic_fetch_add_explicit(&next_request, 1, memory_order_relaxed);
        if (i >= total)
            break;
        make_request(&request, i);
        sums[i] = handle_request(request.data, request.len);
        unsigned long done = atomic_fetch_add_explicit(&done_requests, 1, memory_order_relaxed) + 1;
        if (rss_every && done % rss_every == 0)
            report_rss(done);
    }
    free(request.data);
    return NULL;
}

int main(int argc, char **argv)
{
    struct options o = { .count = 20000, .threads = 2 };
    if (!parse_options(argc, argv, &o) || o.threads == 0 || o.threads > 256) {
        fprintf(stderr, "usage: wl_server [N] [--threads T] [--leak] [--rss-every K]\n");
        return 2;
    }
    total = o.count;
    rss_every = o.rss_every;
    leaky_handler = o.leak;
    sums = calloc(total, sizeof *sums);
    if (sums == NULL)
        die("wl_server", "sums");
    pthread_t threads[256];
    report_start_rss();
    uint64_t start = now_ns();
    for (unsigned t = 0; t < o.threads; t++)
        if (pthread_create(&threads[t], NULL, worker, NULL) != 0) {
            fprintf(stderr, "wl_server: pthread_create failed\n");
            return 1;
        }
    for (unsigned t = 0; t < o.threads; t++)
        pthread_join(threads[t], NULL);
    report_loop(now_ns() - start);
    report_peak_rss();
    uint64_t checksum = FNV_START;
    for (unsigned long i = 0; i < total; i++)
        checksum = (checksum ^ sums[i]) * 0x100000001b3ull;
    free(sums);
    printf("checksum %016llx\n", (unsigned long long)checksum);
    return 0;
}
