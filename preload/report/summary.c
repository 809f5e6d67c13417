/*
 * summary.c — the exit summary's answer to "what escaped, and from where".
 *
 * Layer: preload, report.  The statistics emitter (stats_out.c) adds what needs symbols:
 * escape sites (allocation backtraces of objects that escaped their region, top sites first)
 * and a verdict per marker.  The same data goes into the statistics JSON (escape_sites,
 * verdicts), so `scripts/arenashim report FILE.json` prints this summary again from a saved
 * file; the JSON also lists the allocation sites that trace_allocs sampled (alloc_sites: the
 * sites with escapes first, then the most allocations), which `report --folded` turns into a
 * flame graph's input.
 */
#include "summary.h"

#include <stdio.h>
#include <string.h>

#include "core.h"
#include "marker_table.h"
#include "symbolize.h"

#define SITES_SHOWN 10
/* Allocation sites in the JSON (for flame graphs): enough for the picture, a bounded file. */
#define ALLOC_SITES_SHOWN 256

/* "#i 0xPC module+0xOFF (symbol+0xOFF)" */
static void format_frame(char *line, size_t len, unsigned index, uintptr_t pc)
{
    struct symbolized where = { .module = "" };
    bool named = symbolize(pc - (index ? 1 : 0), &where);
    int n = snprintf(line, len, "#%u %#lx", index, (unsigned long)pc);
    if (where.module[0] && n > 0 && (size_t)n < len)
        n += snprintf(line + n, len - (size_t)n, " %s+%#lx", where.module,
                      (unsigned long)(where.module_offset + (index ? 1 : 0)));
    if (named && n > 0 && (size_t)n < len)
        snprintf(line + n, len - (size_t)n, " (%s+%#lx)", where.symbol,
                 (unsigned long)(where.symbol_offset + (index ? 1 : 0)));
}

/* Sites with escapes, most escapes first (selection: the table is small and this runs once). */
static unsigned top_sites(uint32_t *ids, unsigned max)
{
    unsigned count = 0;
    uint32_t total = stack_table_count();
    for (uint32_t id = 1; id <= total; id++) {
        const struct stack_record *site = stack_table_get(id);
        if (site == NULL || site->escapes == 0)
            continue;
        unsigned at = count < max ? count++ : max;
        if (at == max) {
            if (site->escapes <= stack_table_get(ids[max - 1])->escapes)
                continue;
            at = max - 1;
        }
        while (at > 0 && stack_table_get(ids[at - 1])->escapes < site->escapes) {
            ids[at] = ids[at - 1];
            at--;
        }
        ids[at] = id;
    }
    return count;
}

static unsigned sites_of_marker(int32_t marker)
{
    unsigned sites = 0;
    uint32_t total = stack_table_count();
    for (uint32_t id = 1; id <= total; id++) {
        const struct stack_record *site = stack_table_get(id);
        if (site && site->escapes && site->marker == marker)
            sites++;
    }
    return sites;
}

static void verdict(char *line, size_t len, unsigned marker)
{
    const struct marker_entry *entry = marker_table_entry((int32_t)marker);
    const struct marker_counters *m = marker_counters_of((int32_t)marker);
    uint64_t escapes = __atomic_load_n(&m->escapes, __ATOMIC_RELAXED);
    if (!entry->resolved) {
        snprintf(line, len, "%s", entry->refused ? "refused" : "never resolved");
    } else if (escapes == 0) {
        snprintf(line, len, "no escapes seen in %llu regions", (unsigned long long)m->regions);
    } else if (core_config.options.trace_allocs && sites_of_marker((int32_t)marker) > 0) {
        unsigned sites = sites_of_marker((int32_t)marker);
        snprintf(line, len, "%llu object%s from %u site%s escaped (in %llu regions)",
                 (unsigned long long)escapes, escapes == 1 ? "" : "s", sites, sites == 1 ? "" : "s",
                 (unsigned long long)m->regions);
    } else if (core_config.options.trace_allocs) {
        snprintf(line, len, "%llu object%s escaped (in %llu regions), none of them among the sampled "
                 "allocations (trace_allocs=%llu traces one in %llu; trace_allocs=1 shows every site)",
                 (unsigned long long)escapes, escapes == 1 ? "" : "s", (unsigned long long)m->regions,
                 (unsigned long long)core_config.options.trace_allocs,
                 (unsigned long long)core_config.options.trace_allocs);
    } else {
        snprintf(line, len, "%llu escapes seen in %llu regions (run with trace_allocs=1 to see "
                 "where the objects were allocated)", (unsigned long long)escapes,
                 (unsigned long long)m->regions);
    }
}

void summary_append_text(struct text *out)
{
    uint32_t ids[SITES_SHOWN];
    unsigned count = top_sites(ids, SITES_SHOWN);
    if (count) {
        text_append(out, "  escapes by allocation site (top %u):\n", count);
        for (unsigned i = 0; i < count; i++) {
            const struct stack_record *site = stack_table_get(ids[i]);
            text_append(out, "    %llu of %llu traced objects escaped, marker '%s', allocated at:\n",
                       (unsigned long long)site->escapes, (unsigned long long)site->allocations,
                       marker_name(site->marker));
            for (unsigned f = 0; f < site->depth && f < 8; f++) {
                char line[320];
                format_frame(line, sizeof line, f, site->pcs[f]);
                text_append(out, "      %s\n", line);
            }
        }
    }
    for (unsigned i = 0; i < marker_table_count(); i++) {
        char line[300];
        verdict(line, sizeof line, i);
        text_append(out, "  verdict '%s': %s\n", marker_table_entry((int32_t)i)->spec, line);
    }
}

/* Does site a come before site b among the allocation sites: those with escapes first, then
 * by traced allocations. */
/* One site of escape_sites or alloc_sites: its counts, marker and symbolised frames. */
static void append_site_json(struct text *out, const struct stack_record *site)
{
    text_append(out, "{\"escapes\": %llu, \"allocations\": %llu, \"marker\": ",
                (unsigned long long)site->escapes, (unsigned long long)site->allocations);
    text_json_string(out, marker_name(site->marker));
    text_append(out, ", \"frames\": [");
    for (unsigned f = 0; f < site->depth; f++) {
        char line[320];
        format_frame(line, sizeof line, f, site->pcs[f]);
        if (f)
            text_append(out, ", ");
        text_json_string(out, line);
    }
    text_append(out, "]}");
}

static bool site_before(const struct stack_record *a, const struct stack_record *b)
{
    if ((a->escapes != 0) != (b->escapes != 0))
        return a->escapes != 0;
    return a->allocations > b->allocations;
}

void summary_append_alloc_sites_json(struct text *out)
{
    uint32_t ids[ALLOC_SITES_SHOWN];
    unsigned count = 0, total = 0;
    uint64_t omitted = 0;
    uint32_t sites = stack_table_count();
    for (uint32_t id = 1; id <= sites; id++) {
        const struct stack_record *site = stack_table_get(id);
        if (site == NULL || site->allocations == 0)
            continue; /* a region's begin or end site (verbose), no allocation's */
        total++;
        unsigned at = count;
        if (count == ALLOC_SITES_SHOWN) {
            const struct stack_record *last = stack_table_get(ids[count - 1]);
            if (!site_before(site, last)) {
                omitted += site->allocations;
                continue;
            }
            omitted += last->allocations;
            at = count - 1;
        } else {
            count++;
        }
        while (at > 0 && site_before(site, stack_table_get(ids[at - 1]))) {
            ids[at] = ids[at - 1];
            at--;
        }
        ids[at] = id;
    }
    text_append(out, "\"alloc_sites\": [");
    for (unsigned i = 0; i < count; i++) {
        if (i)
            text_append(out, ", ");
        append_site_json(out, stack_table_get(ids[i]));
    }
    text_append(out, "], \"alloc_sites_total\": %u, \"alloc_sites_omitted_allocations\": %llu",
                total, (unsigned long long)omitted);
}

void summary_append_json(struct text *out)
{
    uint32_t ids[SITES_SHOWN];
    unsigned count = top_sites(ids, SITES_SHOWN);
    text_append(out, "\"escape_sites\": [");
    for (unsigned i = 0; i < count; i++) {
        if (i)
            text_append(out, ", ");
        append_site_json(out, stack_table_get(ids[i]));
    }
    text_append(out, "], \"verdicts\": [");
    for (unsigned i = 0; i < marker_table_count(); i++) {
        char line[300];
        verdict(line, sizeof line, i);
        text_append(out, "%s{\"spec\": ", i ? ", " : "");
        text_json_string(out, marker_table_entry((int32_t)i)->spec);
        text_append(out, ", \"verdict\": ");
        text_json_string(out, line);
        text_append(out, "}");
    }
    text_append(out, "]");
}
