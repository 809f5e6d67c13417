/*
 * scan_report.h — what the last scan kept, and who still points there.
 *
 * Layer: preload, report.  The collector records the chunks a scan kept with one referrer
 * each (the core remembers them; the collector names jemalloc's heap among them); the
 * statistics JSON lists them (scan_kept) and, with verbose, each gets a line in the log.
 */
#ifndef ARENASHIM_PRELOAD_SCAN_REPORT_H
#define ARENASHIM_PRELOAD_SCAN_REPORT_H

#include <sys/types.h>

#include "core.h"
#include "report.h"

/* Keeps a copy of the kept chunks of the scan that just ended. */
void scan_report_record(const struct scan_kept *kept, unsigned count);
/* The last scan's kept chunks. */
unsigned scan_report_kept(const struct scan_kept **kept);
/* One log line per kept chunk: its region, the pointer, where it was found. */
void scan_report_print_kept(void);
/* The scan gave up because thread tid would not stop: said once per process. */
void scan_report_giveup(pid_t tid);
/* "stack of thread 7", ".data/.bss of /usr/lib/...", "anonymous mapping (...)". */
void scan_report_describe_referrer(const struct scan_kept *kept, struct report *report);
/* The JSON name of a referrer kind ("stack", "heap", ...). */
const char *scan_report_kind_name(enum referrer_kind kind);

#endif
