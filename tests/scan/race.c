/*
 * race.c — the lost-pointer race of a concurrent scan, at full speed.
 *
 *   race SECONDS
 *
 * A heap of HEAP_BYTES (malloc, outside any region) holds the only pointer to each of two dead
 * chunks.  Two mover threads move their pointer without pause from slot to slot: to a random
 * slot anywhere in the heap (so, against a scan reading the heap front to back or in slices,
 * often from a place not yet read to a place already read), writing the new slot before
 * clearing the old one, in three instructions, so that apart from those the pointer is in
 * memory and nowhere else (no register keeps it between moves).  Meanwhile the main thread
 * runs scans (arenashim_collect); after each, both dead chunks must be among those the scan
 * kept (stats_json's scan_kept), and one-chunk spans allocated in a fresh region must not
 * land in them.  A scan that read the new slot
 * before the move and the old one after it, and did not read the written page again with the
 * world stopped, would free the chunk; the probes would then find it.
 *
 * Each round also makes a few chunks of garbage that nothing points to: they must be
 * released, so a scan that frees nothing at all cannot pass.  Prints "DONE failures=N".
 */
#include "scanutil.h"

#include <pthread.h>

#define HEAP_BYTES ((size_t)64 << 20)
#define HEAP_SLOTS (HEAP_BYTES / sizeof(uintptr_t))
#define MOVERS 2
#define PROBES 48

static uintptr_t *heap;
static volatile int stop_movers;
static uint64_t moves[MOVERS];
static size_t start_slot[MOVERS];

static void store_in_heap_0(uintptr_t v) { heap[start_slot[0]] = v; }
static void store_in_heap_1(uintptr_t v) { heap[start_slot[1]] = v; }

static uint64_t next_random(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

/* heap[to] = heap[from]; heap[from] = 0; with the value in a register for three
 * instructions only. */
static inline void move_slot(uintptr_t *from, uintptr_t *to)
{
    __asm__ volatile("movq (%[from]), %%rax\n\t"
                     "movq %%rax, (%[to])\n\t"
                     "movq $0, (%[from])\n\t"
                     "xorl %%eax, %%eax\n\t"
                     :
                     : [from] "r"(from), [to] "r"(to)
                     : "rax", "memory");
}

static void *mover(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    uint64_t rng = 0x9e3779b97f4a7c15ull * (id + 7);
    size_t at = start_slot[id];
    uint64_t count = 0;
    while (!stop_movers) {
        /* Slots of mover id are those with index % MOVERS == id: the two never collide. */
        size_t next = (size_t)(next_random(&rng) % (HEAP_SLOTS / MOVERS)) * MOVERS + id;
        if (next == at)
            continue;
        /* Take the write-protection faults (a concurrent scan arms the heap) before the move,
         * while no register holds the pointer: a thread stopped inside a fault would show it
         * in its saved registers and hide a lost pointer from the test.  at ^ 2 is another
         * slot of this mover on at's page, empty. */
        __atomic_store_n(&heap[next], 0, __ATOMIC_RELAXED);
        __atomic_store_n(&heap[at ^ 2], 0, __ATOMIC_RELAXED);
        move_slot(&heap[at], &heap[next]);
        at = next;
        count++;
    }
    moves[id] = count;
    return NULL;
}

int main(int argc, char **argv)
{
    su_require_shim();
    double seconds = argc > 1 ? atof(argv[1]) : 3;
    heap = malloc(HEAP_BYTES);
    if (heap == NULL) {
        printf("FAILED: malloc(%zu)\n", HEAP_BYTES);
        return 3;
    }
    memset(heap, 0, HEAP_BYTES);
    start_slot[0] = 0;
    start_slot[1] = HEAP_SLOTS - 1;
    uintptr_t dead[MOVERS];
    dead[0] = su_make_dead(SPAN_OBJECT_BYTES, 0, store_in_heap_0, NULL);
    dead[1] = su_make_dead(SPAN_OBJECT_BYTES, 0, store_in_heap_1, NULL);
    printf("DEAD 0x%" PRIxPTR "00000 0x%" PRIxPTR "00000\n", dead[0], dead[1]);
    fflush(stdout);

    pthread_t threads[MOVERS];
    for (unsigned i = 0; i < MOVERS; i++)
        if (pthread_create(&threads[i], NULL, mover, (void *)(uintptr_t)i) != 0) {
            printf("FAILED: pthread_create\n");
            return 3;
        }

    unsigned rounds = 0;
    unsigned long long released_before = su_stat("chunks_released");
    double deadline = su_now() + seconds;
    while (su_now() < deadline && su_failures == 0) {
        for (int g = 0; g < 3; g++)
            su_make_dead(SPAN_OBJECT_BYTES, 0, NULL, NULL); /* garbage: nothing points there */
        su_collect_clean();
        for (unsigned m = 0; m < MOVERS; m++) {
            char kind[32];
            CHECK(su_kept_kind(dead[m], kind, sizeof kind), "round %u: the scan did not keep dead "
                  "chunk %u (0x%" PRIxPTR "00000) while the only pointer to it was in the heap",
                  rounds, m, dead[m]);
            unsigned hits = su_probe(dead[m], 1, PROBES);
            CHECK(hits == 0, "round %u: a new region allocation landed in dead chunk %u "
                  "(0x%" PRIxPTR "00000) while the only pointer to it was still in the heap",
                  rounds, m, dead[m]);
        }
        rounds++;
    }
    stop_movers = 1;
    for (unsigned i = 0; i < MOVERS; i++)
        pthread_join(threads[i], NULL);

    su_stats_refresh();
    unsigned long long released = su_json_number("chunks_released") - released_before;
    printf("rounds %u, moves %llu + %llu, chunks released %llu, scans %llu (%llu concurrent), "
           "longest pause %.3f ms\n", rounds, (unsigned long long)moves[0],
           (unsigned long long)moves[1], released, su_json_number("scans"),
           su_json_number("scans_concurrent"), su_json_number("scan_pause_max_ns") / 1e6);
    CHECK(rounds >= 3, "only %u rounds", rounds);
    CHECK(released >= rounds, "the scans released %llu chunks in %u rounds of garbage", released, rounds);
    CHECK(moves[0] > 1000 && moves[1] > 1000, "the movers hardly ran");
    printf("DONE failures=%d\n", su_failures);
    return su_failures ? 1 : 0;
}
