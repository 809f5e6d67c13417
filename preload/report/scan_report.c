/*
 * scan_report.c — the last scan's kept chunks and their referrers (see scan_report.h).
 *
 * Layer: preload, report.  The copy lives in metadata (it names chunk addresses, which the
 * scan must not take for pointers) and is written by the one scan that runs at a time.
 */
#include "scan_report.h"

#include <string.h>

#include "marker_table.h"

static struct scan_kept *last_kept;
static unsigned last_count;
static struct report *print_buffer;
static int giveup_reported;

void scan_report_record(const struct scan_kept *kept, unsigned count)
{
    if (last_kept == NULL)
        last_kept = metadata_map(sizeof(struct scan_kept) * SCAN_KEPT_MAX);
    if (last_kept == NULL)
        return;
    if (count > SCAN_KEPT_MAX)
        count = SCAN_KEPT_MAX;
    memcpy(last_kept, kept, count * sizeof *kept);
    __atomic_store_n(&last_count, count, __ATOMIC_RELEASE);
}

unsigned scan_report_kept(const struct scan_kept **kept)
{
    *kept = last_kept;
    return last_kept ? __atomic_load_n(&last_count, __ATOMIC_ACQUIRE) : 0;
}

const char *scan_report_kind_name(enum referrer_kind kind)
{
    static const char *names[] = { "unknown", "stack", "registers", "module", "anonymous",
                                   "shared", "region", "heap" };
    return (unsigned)kind < sizeof names / sizeof names[0] ? names[kind] : "unknown";
}

static const char *referrer_description(enum referrer_kind kind)
{
    switch (kind) {
    case REFERRER_STACK: return "stack of thread ";
    case REFERRER_REGISTERS: return "registers of thread ";
    case REFERRER_MODULE: return ".data/.bss of ";
    case REFERRER_ANONYMOUS: return "anonymous mapping";
    case REFERRER_SHARED: return "shared memory";
    case REFERRER_REGION: return "live region chunk";
    case REFERRER_HEAP: return "anonymous mapping (jemalloc heap object)";
    default: return "unknown";
    }
}

void scan_report_describe_referrer(const struct scan_kept *kept, struct report *report)
{
    report_string(report, referrer_description(kept->kind));
    if (kept->kind == REFERRER_STACK || kept->kind == REFERRER_REGISTERS) {
        report_decimal(report, kept->thread_number);
    } else if (kept->kind == REFERRER_MODULE) {
        report_string(report, kept->name);
    } else if (kept->kind == REFERRER_ANONYMOUS) {
        report_string(report, " (memory the program mapped)");
        if (kept->name[0]) {
            report_string(report, " ");
            report_string(report, kept->name);
        }
    }
}

static struct report *buffer(void)
{
    if (print_buffer == NULL)
        print_buffer = metadata_map(sizeof *print_buffer);
    return print_buffer;
}

void scan_report_print_kept(void)
{
    struct report *report = buffer();
    const struct scan_kept *kept;
    unsigned count = scan_report_kept(&kept);
    for (unsigned i = 0; report && i < count; i++) {
        struct dangling_info info;
        report_init(report);
        report_string(report, "arenashim: scan kept chunk ");
        report_hex(report, (uintptr_t)chunk_address(kept[i].chunk));
        if (dangling_lookup(kept[i].value, &info) && info.found_range) {
            report_string(report, " (region #");
            report_decimal(report, info.range.region_id);
            report_string(report, ", marker '");
            report_string(report, marker_name(info.range.marker));
            report_string(report, "')");
        }
        report_string(report, ": pointer ");
        report_hex(report, kept[i].value);
        if (kept[i].location && kept[i].kind != REFERRER_REGISTERS) {
            report_string(report, " stored at ");
            report_hex(report, kept[i].location);
        }
        report_string(report, " in ");
        scan_report_describe_referrer(&kept[i], report);
        report_string(report, "\n");
        report_emit(report);
    }
}

void scan_report_giveup(pid_t tid)
{
    struct report *report = buffer();
    if (report == NULL || __atomic_exchange_n(&giveup_reported, 1, __ATOMIC_RELAXED))
        return;
    report_init(report);
    report_string(report, "arenashim: warning: scan given up: thread ");
    report_decimal(report, (uint64_t)tid);
    report_string(report, " did not stop (it blocks or cannot take the scan's signal); quarantined "
                          "memory stays quarantined, which is safe (reported once)\n");
    report_emit(report);
}
