/*
 * stats.c — the statistics: counters and their JSON and text forms.
 *
 * Layer: core.  Hot counters live per thread (thread_counters, plain increments by their
 * owner) and per region (folded at region end); rare events are global atomics.  A snapshot
 * adds the live threads' counters to those of retired threads; it is exact once threads are
 * quiet (at exit) and close enough while they run.  Formatting uses snprintf into the
 * caller's buffer and never allocates.
 */
#include "internal.h"
#include "scan.h"
#include "text.h"

#include <stdio.h>
#include <string.h>

void stats_add(uint64_t *counter, uint64_t amount)
{
    __atomic_fetch_add(counter, amount, __ATOMIC_RELAXED);
}

static void add_thread_counters(struct thread_counters *to, const struct thread_counters *from)
{
    to->regions_begun += __atomic_load_n(&from->regions_begun, __ATOMIC_RELAXED);
    to->regions_ended += __atomic_load_n(&from->regions_ended, __ATOMIC_RELAXED);
    to->region_allocs += __atomic_load_n(&from->region_allocs, __ATOMIC_RELAXED);
    to->region_bytes += __atomic_load_n(&from->region_bytes, __ATOMIC_RELAXED);
    to->frees_ignored += __atomic_load_n(&from->frees_ignored, __ATOMIC_RELAXED);
    to->frees_undone += __atomic_load_n(&from->frees_undone, __ATOMIC_RELAXED);
    to->escaped_frees += __atomic_load_n(&from->escaped_frees, __ATOMIC_RELAXED);
}

void stats_fold_thread(const struct thread_counters *from)
{
    struct thread_counters *to = &core.counters.retired;
    stats_add(&to->regions_begun, from->regions_begun);
    stats_add(&to->regions_ended, from->regions_ended);
    stats_add(&to->region_allocs, from->region_allocs);
    stats_add(&to->region_bytes, from->region_bytes);
    stats_add(&to->frees_ignored, from->frees_ignored);
    stats_add(&to->frees_undone, from->frees_undone);
    stats_add(&to->escaped_frees, from->escaped_frees);
}

void stats_sum(struct core_counters *out)
{
    spin_lock_acquire(&core.threads_lock);
    /* Every field is a uint64_t that other threads update atomically: copy each likewise. */
    const uint64_t *from = (const uint64_t *)&core.counters;
    uint64_t *to = (uint64_t *)out;
    for (size_t i = 0; i < sizeof *out / sizeof(uint64_t); i++)
        to[i] = __atomic_load_n(&from[i], __ATOMIC_RELAXED);
    for (struct thread_state *t = core.all_threads; t; t = t->next_all)
        if (__atomic_load_n(&t->alive, __ATOMIC_ACQUIRE))
            add_thread_counters(&out->retired, &t->counters);
    /* The calling thread's open regions count what they allocated so far (the regions that
     * are open at exit, typically).  Other threads' region records may be recycled under us
     * at any moment, so theirs are counted when they end. */
    struct thread_state *self = core.current_thread ? core.current_thread() : NULL;
    for (struct region *r = self ? self->innermost : NULL; r; r = r->outer) {
        out->retired.region_allocs += r->allocs;
        out->retired.region_bytes += r->bytes;
    }
    spin_lock_release(&core.threads_lock);
}

/* cycle_counter() units to seconds, calibrated over the life of the process. */
static double seconds_of_cycles(uint64_t cycles)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    uint64_t elapsed_cycles = cycle_counter() - core.start_cycles;
    if (elapsed_cycles == 0 || now_ns <= core.start_ns)
        return 0;
    return (double)cycles * ((double)(now_ns - core.start_ns) / 1e9) / (double)elapsed_cycles;
}

const char *marker_name(int32_t marker)
{
    if (marker == MARKER_API)
        return "(api)";
    if (marker == MARKER_ARENA)
        return "(arena)";
    if (marker >= 0 && (unsigned)marker < core.marker_count)
        return core.markers[marker].spec;
    return "(unknown)";
}

size_t stats_format_json(char *buf, size_t len)
{
    struct core_counters c;
    struct text text = { buf, len, 0 };
    stats_sum(&c);
    const struct thread_counters *t = &c.retired;
    text_append(&text, "{");
    text_append(&text, "\"regions_begun\": %llu, ", (unsigned long long)t->regions_begun);
    text_append(&text, "\"regions_ended\": %llu, ", (unsigned long long)t->regions_ended);
    text_append(&text, "\"region_allocs\": %llu, ", (unsigned long long)t->region_allocs);
    text_append(&text, "\"region_bytes\": %llu, ", (unsigned long long)t->region_bytes);
    text_append(&text, "\"frees_ignored\": %llu, ", (unsigned long long)t->frees_ignored);
    text_append(&text, "\"frees_undone\": %llu, ", (unsigned long long)t->frees_undone);
    text_append(&text, "\"escaped_frees\": %llu, ", (unsigned long long)t->escaped_frees);
    text_append(&text, "\"chunks_mapped\": %llu, ", (unsigned long long)c.chunks_mapped);
    text_append(&text, "\"chunks_reused\": %llu, ", (unsigned long long)c.chunks_reused);
    text_append(&text, "\"chunks_quarantined\": %llu, ", (unsigned long long)c.chunks_quarantined);
    text_append(&text, "\"chunks_released\": %llu, ", (unsigned long long)c.chunks_released);
    text_append(&text, "\"quarantine_bytes\": %llu, ",
                (unsigned long long)__atomic_load_n(&core.quarantine_bytes, __ATOMIC_RELAXED));
    text_append(&text, "\"fault_calls\": %llu, ", (unsigned long long)c.fault_calls);
    text_append(&text, "\"bytes_faulted\": %llu, ", (unsigned long long)c.bytes_faulted);
    text_append(&text, "\"bytes_recycled\": %llu, ", (unsigned long long)c.bytes_recycled);
    text_append(&text, "\"scans\": %llu, ", (unsigned long long)c.scans);
    text_append(&text, "\"scan_bytes\": %llu, ", (unsigned long long)c.scan_bytes);
    text_append(&text, "\"scan_giveups\": %llu, ", (unsigned long long)c.scan_giveups);
    text_append(&text, "\"scan_ns\": %llu, ", (unsigned long long)c.scan_ns);
    text_append(&text, "\"scan_pause_last_ns\": %llu, ", (unsigned long long)c.scan_pause_last_ns);
    text_append(&text, "\"scan_pause_max_ns\": %llu, ", (unsigned long long)c.scan_pause_max_ns);
    text_append(&text, "\"scan_chunks_kept_last\": %llu, ", (unsigned long long)c.scan_chunks_kept_last);
    text_append(&text, "\"scan_kept\": [");
    for (unsigned i = 0; i < scan_state.kept_count; i++) {
        const struct scan_kept *k = &scan_state.kept[i];
        static const char *kinds[] = { "unknown", "stack", "registers", "module", "anonymous",
                                       "shared", "region", "heap" };
        text_append(&text, "%s{\"chunk\": \"%#llx\", \"pointer\": \"%#llx\", \"location\": \"%#llx\", "
                    "\"kind\": \"%s\", \"thread\": %u, \"where\": ", i ? ", " : "",
                    (unsigned long long)(uintptr_t)chunk_address(k->chunk), (unsigned long long)k->value,
                    (unsigned long long)k->location, kinds[k->kind], k->thread_number);
        text_json_string(&text, k->name);
        text_append(&text, "}");
    }
    text_append(&text, "], ");
    text_append(&text, "\"dangling_accesses\": %llu, ", (unsigned long long)c.dangling_accesses);
    text_append(&text, "\"fallback_allocs\": %llu, ", (unsigned long long)c.fallback_allocs);
    text_append(&text, "\"reserve_exhausted\": %llu, ", (unsigned long long)c.reserve_exhausted);
    text_append(&text, "\"chunk_size\": %zu, ", core.chunk_size);
    text_append(&text, "\"reserve\": %llu, ", (unsigned long long)core.size);
    text_append(&text, "\"partial_reuse\": %s, ", core.options.partial_reuse ? "true" : "false");
    text_append(&text, "\"markers\": [");
    for (unsigned i = 0; i < core.marker_count; i++) {
        const struct marker_stats *m = &core.markers[i];
        text_append(&text, "%s{\"spec\": ", i ? ", " : "");
        text_json_string(&text, m->spec);
        text_append(&text, ", \"resolved\": %s, \"refused\": %s, \"reason\": ",
                    m->resolved ? "true" : "false", m->refused ? "true" : "false");
        text_json_string(&text, m->reason);
        text_append(&text, ", \"regions\": %llu, \"bytes\": %llu, \"objects\": %llu, "
                    "\"peak_region_bytes\": %llu, \"seconds_inside\": %.6f, \"escapes\": %llu, "
                    "\"escaped_frees\": %llu}",
                    (unsigned long long)m->regions, (unsigned long long)m->bytes,
                    (unsigned long long)m->objects, (unsigned long long)m->peak_bytes,
                    seconds_of_cycles(m->cycles), (unsigned long long)m->escapes,
                    (unsigned long long)m->escaped_frees);
    }
    text_append(&text, "]");
    if (core.json_extra) {
        size_t room = text.used < len ? len - text.used : 0;
        text_append(&text, ", ");
        room = text.used < len ? len - text.used : 0;
        text.used += core.json_extra(room ? buf + text.used : NULL, room);
    }
    text_append(&text, "}");
    return text_finish(&text);
}

static void human_bytes(char *out, size_t len, uint64_t bytes)
{
    static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    double value = (double)bytes;
    unsigned unit = 0;
    while (value >= 1024 && unit < 4) {
        value /= 1024;
        unit++;
    }
    snprintf(out, len, unit ? "%.1f %s" : "%.0f %s", value, units[unit]);
}

size_t stats_format_text(char *buf, size_t len)
{
    struct core_counters c;
    struct text text = { buf, len, 0 };
    char bytes[32], faulted[32], quarantined[32];
    stats_sum(&c);
    const struct thread_counters *t = &c.retired;
    human_bytes(bytes, sizeof bytes, t->region_bytes);
    human_bytes(faulted, sizeof faulted, c.bytes_faulted);
    human_bytes(quarantined, sizeof quarantined, core.quarantine_bytes);
    text_append(&text, "arenashim: statistics\n");
    text_append(&text, "  regions          %llu begun, %llu ended\n",
                (unsigned long long)t->regions_begun, (unsigned long long)t->regions_ended);
    text_append(&text, "  region objects   %llu (%s); frees: %llu ignored, %llu undone, %llu after region end\n",
                (unsigned long long)t->region_allocs, bytes, (unsigned long long)t->frees_ignored,
                (unsigned long long)t->frees_undone, (unsigned long long)t->escaped_frees);
    text_append(&text, "  chunks           %llu mapped, %llu reused, %llu quarantined, %llu released (chunk %zu KiB)\n",
                (unsigned long long)c.chunks_mapped, (unsigned long long)c.chunks_reused,
                (unsigned long long)c.chunks_quarantined, (unsigned long long)c.chunks_released,
                core.chunk_size >> 10);
    char recycled[32];
    human_bytes(recycled, sizeof recycled, c.bytes_recycled);
    text_append(&text, "  faulting         %llu calls, %s (%s of pages recycled); quarantine holds %s\n",
                (unsigned long long)c.fault_calls, faulted, recycled, quarantined);
    text_append(&text, "  scans            %llu (%llu bytes read, %.3f ms in all, longest pause %.3f ms, %llu given up)\n",
                (unsigned long long)c.scans, (unsigned long long)c.scan_bytes, (double)c.scan_ns / 1e6,
                (double)c.scan_pause_max_ns / 1e6, (unsigned long long)c.scan_giveups);
    text_append(&text, "  dangling         %llu accesses reported\n", (unsigned long long)c.dangling_accesses);
    if (c.fallback_allocs)
        text_append(&text, "  heap fallback    %llu region allocations served by jemalloc\n",
                    (unsigned long long)c.fallback_allocs);
    for (unsigned i = 0; i < core.marker_count; i++) {
        const struct marker_stats *m = &core.markers[i];
        human_bytes(bytes, sizeof bytes, m->bytes);
        char peak[32];
        human_bytes(peak, sizeof peak, m->peak_bytes);
        text_append(&text, "  marker '%s': %s, %llu regions, %llu objects, %s (largest region %s), "
                    "%.3f s inside\n", m->spec,
                    m->refused ? "refused" : m->resolved ? "resolved" : "unresolved",
                    (unsigned long long)m->regions, (unsigned long long)m->objects, bytes, peak,
                    seconds_of_cycles(m->cycles));
    }
    if (core.text_extra) {
        size_t room = text.used < len ? len - text.used : 0;
        text.used += core.text_extra(room ? buf + text.used : NULL, room);
    }
    return text_finish(&text);
}
