/*
 * stats.c — the statistics: counters, snapshots, and the one list of their names.
 *
 * Layer: core.  Hot counters live per thread (thread_counters, plain increments by their
 * owner) and per region (folded at region end); rare events are global atomics
 * (core_counters).  A snapshot adds the live threads' counters to those of retired threads;
 * it is exact once threads are quiet (at exit) and close enough while they run.  Each
 * counter is named once, in the field lists below, which the preload's emitter walks for the
 * statistics JSON; formatting is the preload's (it needs symbols and marker names).
 */
#include "internal.h"

#include <stddef.h>

struct core_counters core_counters;

#define THREAD_FIELD(name) { #name, offsetof(struct thread_counters, name) }
const struct counter_field thread_counter_fields[] = {
    THREAD_FIELD(regions_begun), THREAD_FIELD(regions_ended), THREAD_FIELD(region_allocs),
    THREAD_FIELD(region_bytes),  THREAD_FIELD(frees_ignored), THREAD_FIELD(frees_undone),
    THREAD_FIELD(escaped_frees),
};
const unsigned thread_counter_field_count = sizeof thread_counter_fields / sizeof thread_counter_fields[0];

#define CORE_FIELD(name) { #name, offsetof(struct core_counters, name) }
const struct counter_field core_counter_fields[] = {
    CORE_FIELD(chunks_mapped),      CORE_FIELD(chunks_reused),      CORE_FIELD(chunks_quarantined),
    CORE_FIELD(chunks_released),    CORE_FIELD(fault_calls),        CORE_FIELD(memory_calls),
    CORE_FIELD(bytes_faulted),
    CORE_FIELD(bytes_recycled),     CORE_FIELD(scans),              CORE_FIELD(scan_bytes),
    CORE_FIELD(scan_giveups),       CORE_FIELD(scan_ns),            CORE_FIELD(scan_pause_last_ns),
    CORE_FIELD(scan_pause_max_ns),  CORE_FIELD(scan_chunks_kept_last),
    CORE_FIELD(scans_concurrent),   CORE_FIELD(scan_concurrent_ns), CORE_FIELD(scan_stopped_bytes),
    CORE_FIELD(scan_threads_last),
    CORE_FIELD(dangling_accesses),  CORE_FIELD(fallback_allocs),    CORE_FIELD(reserve_exhausted),
    CORE_FIELD(kernel_refusals),    CORE_FIELD(reclaims_skipped),   CORE_FIELD(recovered_runs),
    CORE_FIELD(ends_unprotected),
};
const unsigned core_counter_field_count = sizeof core_counter_fields / sizeof core_counter_fields[0];

_Static_assert(sizeof(struct thread_counters) == sizeof thread_counter_fields / sizeof thread_counter_fields[0] * sizeof(uint64_t),
               "every thread counter is named in thread_counter_fields");
_Static_assert(offsetof(struct core_counters, retired) ==
                   sizeof core_counter_fields / sizeof core_counter_fields[0] * sizeof(uint64_t),
               "every core counter is named in core_counter_fields");

void stats_add(uint64_t *counter, uint64_t amount)
{
    __atomic_fetch_add(counter, amount, __ATOMIC_RELAXED);
}

void stats_max(uint64_t *counter, uint64_t value)
{
    uint64_t seen = __atomic_load_n(counter, __ATOMIC_RELAXED);
    while (value > seen &&
           !__atomic_compare_exchange_n(counter, &seen, value, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

/* Adds every field of from to to (to is the caller's; from is written by others). */
static void add_thread_counters(struct thread_counters *to, const struct thread_counters *from)
{
    for (unsigned i = 0; i < thread_counter_field_count; i++)
        *(uint64_t *)((char *)to + thread_counter_fields[i].offset) += counter_field_value(from, &thread_counter_fields[i]);
}

void stats_fold_thread(const struct thread_counters *from)
{
    for (unsigned i = 0; i < thread_counter_field_count; i++)
        stats_add((uint64_t *)((char *)&core_counters.retired + thread_counter_fields[i].offset),
                  counter_field_value(from, &thread_counter_fields[i]));
}

void stats_sum(struct core_counters *out, const struct thread_state *self)
{
    spin_lock_acquire(&core.threads_lock);
    /* Every field is a uint64_t that other threads update atomically: copy each likewise. */
    const uint64_t *from = (const uint64_t *)&core_counters;
    uint64_t *to = (uint64_t *)out;
    for (size_t i = 0; i < sizeof *out / sizeof(uint64_t); i++)
        to[i] = __atomic_load_n(&from[i], __ATOMIC_RELAXED);
    for (struct thread_state *t = core.all_threads; t; t = t->next_all)
        if (__atomic_load_n(&t->alive, __ATOMIC_ACQUIRE))
            add_thread_counters(&out->retired, &t->counters);
    /* The calling thread's open regions count what they allocated so far (the regions that
     * are open at exit, typically).  Other threads' region records may be recycled under us
     * at any moment, so theirs are counted when they end. */
    for (struct region *r = self ? self->innermost : NULL; r; r = r->outer) {
        out->retired.region_allocs += r->allocs;
        out->retired.region_bytes += r->bytes;
        out->retired.frees_undone += r->frees_undone;
        out->retired.frees_ignored += r->frees_ignored;
    }
    spin_lock_release(&core.threads_lock);
}

uint64_t quarantine_bytes(void)
{
    return __atomic_load_n(&core.quarantine_bytes, __ATOMIC_RELAXED);
}

double seconds_of_cycles(uint64_t cycles)
{
    uint64_t now_ns = monotonic_ns();
    uint64_t elapsed_cycles = cycle_counter() - core.start_cycles;
    if (elapsed_cycles == 0 || now_ns <= core.start_ns)
        return 0;
    return (double)cycles * ((double)(now_ns - core.start_ns) / 1e9) / (double)elapsed_cycles;
}
