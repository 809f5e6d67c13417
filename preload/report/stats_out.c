/*
 * stats_out.c — the one emitter of the statistics: JSON, the exit summary, the file.
 *
 * Layer: preload, report.  The counters are the core's, named once in its field lists; the
 * emitter adds what needs the layers above the core: marker names, the referrers the last
 * scan kept, escape sites, allocation sites and verdicts (summary.c), the command line, and
 * the statistics over time (timeseries.c, with stats_json).  The same JSON object is what
 * arenashim_stats_json returns and what stats_json writes, so `scripts/arenashim report
 * FILE.json` prints this summary again from a saved file.  Formatting uses snprintf into the
 * caller's buffer and never allocates.
 */
#include "stats_out.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "binding.h"
#include "log.h"
#include "marker_table.h"
#include "proc.h"
#include "process.h"
#include "scan_report.h"
#include "summary.h"
#include "sys.h"
#include "text.h"
#include "timeseries.h"

static void append_counters(struct text *text, const void *counters, const struct counter_field *fields,
                            unsigned count)
{
    for (unsigned i = 0; i < count; i++)
        text_append(text, "\"%s\": %llu, ", fields[i].name,
                    (unsigned long long)counter_field_value(counters, &fields[i]));
}

static void append_scan_kept(struct text *text)
{
    const struct scan_kept *kept;
    unsigned count = scan_report_kept(&kept);
    text_append(text, "\"scan_kept\": [");
    for (unsigned i = 0; i < count; i++) {
        const struct scan_kept *k = &kept[i];
        text_append(text, "%s{\"chunk\": \"%#llx\", \"pointer\": \"%#llx\", \"location\": \"%#llx\", "
                    "\"kind\": \"%s\", \"thread\": %u, \"where\": ", i ? ", " : "",
                    (unsigned long long)(uintptr_t)chunk_address(k->chunk), (unsigned long long)k->value,
                    (unsigned long long)k->location, scan_report_kind_name(k->kind), k->thread_number);
        text_json_string(text, k->name);
        text_append(text, "}");
    }
    text_append(text, "], ");
}

/* "command": the process's command line (what the HTML report is titled with), cut to a
 * few KiB; read again at each call, so that formatting twice gives the same text. */
static void append_command(struct text *text)
{
    char line[4096];
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? sys_read(fd, line, sizeof line - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (got < 0)
        got = 0;
    while (got > 0 && line[got - 1] == '\0')
        got--;
    for (ssize_t i = 0; i < got; i++)
        if (line[i] == '\0')
            line[i] = ' ';
    line[got] = '\0';
    text_append(text, "\"command\": ");
    text_json_string(text, line);
    text_append(text, ", ");
}

static unsigned long kernel_mappings;

void stats_count_kernel_mappings(void)
{
    __atomic_store_n(&kernel_mappings, proc_count_mappings(), __ATOMIC_RELAXED);
}

size_t stats_format_json(char *buf, size_t len)
{
    struct core_counters c;
    struct text text = { buf, len, 0 };
    stats_sum(&c, bound_thread);
    text_append(&text, "{");
    append_counters(&text, &c.retired, thread_counter_fields, thread_counter_field_count);
    append_counters(&text, &c, core_counter_fields, core_counter_field_count);
    text_append(&text, "\"quarantine_bytes\": %llu, ", (unsigned long long)quarantine_bytes());
    append_scan_kept(&text);
    text_append(&text, "\"chunk_size\": %zu, ", core_config.chunk_size);
    text_append(&text, "\"reserve\": %llu, ", (unsigned long long)core_config.size);
    text_append(&text, "\"partial_reuse\": %s, ", core_config.options.partial_reuse ? "true" : "false");
    text_append(&text, "\"revoke_batch\": %u, ", core_config.options.revoke_batch);
    text_append(&text, "\"kernel_mappings\": %lu, ", kernel_mappings);
    text_append(&text, "\"metadata_bytes\": %zu, ", metadata_taken_bytes());
    text_append(&text, "\"trace_allocs\": %llu, ", (unsigned long long)core_config.trace_period);
    append_command(&text);
    timeseries_append_json(&text);
    summary_append_alloc_sites_json(&text);
    text_append(&text, ", ");
    text_append(&text, "\"markers\": [");
    for (unsigned i = 0; i < marker_table_count(); i++) {
        const struct marker_entry *entry = marker_table_entry((int32_t)i);
        const struct marker_counters *m = marker_counters_of((int32_t)i);
        text_append(&text, "%s{\"spec\": ", i ? ", " : "");
        text_json_string(&text, entry->spec);
        text_append(&text, ", \"resolved\": %s, \"refused\": %s, \"reason\": ",
                    entry->resolved ? "true" : "false", entry->refused ? "true" : "false");
        text_json_string(&text, entry->reason);
        text_append(&text, ", \"regions\": %llu, \"bytes\": %llu, \"objects\": %llu, "
                    "\"peak_region_bytes\": %llu, \"seconds_inside\": %.6f, \"escapes\": %llu, "
                    "\"escaped_frees\": %llu}",
                    (unsigned long long)m->regions, (unsigned long long)m->bytes,
                    (unsigned long long)m->objects, (unsigned long long)m->peak_bytes,
                    seconds_of_cycles(m->cycles), (unsigned long long)m->escapes,
                    (unsigned long long)m->escaped_frees);
    }
    text_append(&text, "], ");
    summary_append_json(&text);
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
    stats_sum(&c, bound_thread);
    const struct thread_counters *t = &c.retired;
    human_bytes(bytes, sizeof bytes, t->region_bytes);
    human_bytes(faulted, sizeof faulted, c.bytes_faulted);
    human_bytes(quarantined, sizeof quarantined, quarantine_bytes());
    text_append(&text, "arenashim: statistics\n");
    text_append(&text, "  regions          %llu begun, %llu ended\n",
                (unsigned long long)t->regions_begun, (unsigned long long)t->regions_ended);
    text_append(&text, "  region objects   %llu (%s); frees: %llu ignored, %llu undone, %llu after region end\n",
                (unsigned long long)t->region_allocs, bytes, (unsigned long long)t->frees_ignored,
                (unsigned long long)t->frees_undone, (unsigned long long)t->escaped_frees);
    text_append(&text, "  chunks           %llu mapped, %llu reused, %llu quarantined, %llu released (chunk %zu KiB)\n",
                (unsigned long long)c.chunks_mapped, (unsigned long long)c.chunks_reused,
                (unsigned long long)c.chunks_quarantined, (unsigned long long)c.chunks_released,
                core_config.chunk_size >> 10);
    char recycled[32];
    human_bytes(recycled, sizeof recycled, c.bytes_recycled);
    text_append(&text, "  faulting         %llu calls, %s (%s of pages recycled); quarantine holds %s\n",
                (unsigned long long)c.fault_calls, faulted, recycled, quarantined);
    text_append(&text, "  scans            %llu, %llu mostly concurrent (%llu bytes read, %llu with the world stopped; "
                "%.3f ms stopped in all, longest pause %.3f ms; %llu given up)\n",
                (unsigned long long)c.scans, (unsigned long long)c.scans_concurrent,
                (unsigned long long)c.scan_bytes, (unsigned long long)c.scan_stopped_bytes,
                (double)c.scan_ns / 1e6, (double)c.scan_pause_max_ns / 1e6,
                (unsigned long long)c.scan_giveups);
    text_append(&text, "  dangling         %llu accesses reported\n", (unsigned long long)c.dangling_accesses);
    if (c.fallback_allocs)
        text_append(&text, "  heap fallback    %llu region allocations served by jemalloc\n",
                    (unsigned long long)c.fallback_allocs);
    for (unsigned i = 0; i < marker_table_count(); i++) {
        const struct marker_entry *entry = marker_table_entry((int32_t)i);
        const struct marker_counters *m = marker_counters_of((int32_t)i);
        human_bytes(bytes, sizeof bytes, m->bytes);
        char peak[32];
        human_bytes(peak, sizeof peak, m->peak_bytes);
        text_append(&text, "  marker '%s': %s, %llu regions, %llu objects, %s (largest region %s), "
                    "%.3f s inside\n", entry->spec,
                    entry->refused ? "refused" : entry->resolved ? "resolved" : "unresolved",
                    (unsigned long long)m->regions, (unsigned long long)m->objects, bytes, peak,
                    seconds_of_cycles(m->cycles));
    }
    summary_append_text(&text);
    return text_finish(&text);
}


/* Formats with format into the static buffer, or, when the text needs more (thousands of
 * markers), into a mapping of its size: mmap, not metadata, because this also runs in the
 * fatal-signal path.  Returns the text and its length; stats_text_release unmaps. */
static char stats_buffer[64 << 10];

static char *stats_text(size_t (*format)(char *, size_t), size_t *length)
{
    size_t n = format(stats_buffer, sizeof stats_buffer - 1);
    if (n < sizeof stats_buffer - 1) {
        *length = n;
        return stats_buffer;
    }
    size_t size = (n + 2 + 4095) & ~(size_t)4095;
    char *big = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (big == MAP_FAILED) {
        *length = sizeof stats_buffer - 2; /* cut: better than nothing */
        return stats_buffer;
    }
    /* The counters may have moved between the two calls: never past the mapping. */
    n = format(big, size - 1);
    *length = n < size - 1 ? n : size - 2;
    return big;
}

static void stats_text_release(char *text, size_t length)
{
    if (text != stats_buffer)
        munmap(text, (length + 2 + 4095) & ~(size_t)4095);
}

void stats_write(void)
{
    if (!core_config.initialized)
        return;
    /* A launcher (strace, perf, sh) exits after the program it ran and would overwrite that
     * program's statistics file with its own empty one. */
    struct core_counters counters;
    stats_sum(&counters, bound_thread);
    if (counters.retired.regions_begun == 0 && process_is_launcher())
        return;
    size_t n;
    if (core_config.options.stats) {
        char *text = stats_text(stats_format_text, &n);
        log_write(text, n);
        stats_text_release(text, n);
    }
    if (core_config.options.stats_json[0]) {
        char path[OPTIONS_PATH_MAX + 32];
        stats_count_kernel_mappings();
        path_expand(path, sizeof path, core_config.options.stats_json);
        timeseries_finish();
        char *text = stats_text(stats_format_json, &n);
        text[n] = '\n';
        file_write_atomically(path, text, n + 1);
        stats_text_release(text, n);
    }
}
