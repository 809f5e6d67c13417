/*
 * options.h — the settings of one process, parsed from ARENASHIM_OPTIONS.
 *
 * Layer: core, public.  Parsing writes into a caller-owned struct and reports the first error as one
 * line naming the key and the accepted form; it allocates nothing, so it runs before any
 * allocator is ready.
 */
#ifndef ARENASHIM_OPTIONS_H
#define ARENASHIM_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum on_dangling_action { ON_DANGLING_ABORT, ON_DANGLING_RECOVER };
/* auto: mostly concurrent where the kernel tracks writes, else stop-the-world; stop: always
 * stop the world for the whole scan. */
enum scan_mode { SCAN_MODE_AUTO, SCAN_MODE_STOP };
#define SCAN_THREADS_MAX 16

#define OPTIONS_PATH_MAX 1024
#define OPTIONS_EXCLUDE_MAX 16
#define OPTIONS_MODULE_NAME_MAX 128

struct options {
    size_t chunk_size;
    size_t reserve;
    bool reserve_given; /* set by the user: an error if it cannot be had, never shrunk */
    enum on_dangling_action on_dangling;
    bool bad_markers_warn; /* on_bad_marker=warn: a marker that names nothing or is refused is
                            * reported, not fatal, even in the process the user started */
    bool partial_reuse;
    unsigned revoke_batch; /* 0: off; N >= 2: dead regions revoked every N region ends */
    bool kernel_features_off; /* kernel_features=none: the fallbacks of an old kernel */
    bool huge_pages;          /* chunks ask for transparent huge pages (madvise) */
    size_t quarantine_max;
    bool quarantine_max_given;
    bool scan;
    enum scan_mode scan_mode;
    unsigned scan_threads; /* marking threads, the scanning one included; 0: the online CPUs */
    unsigned exclude_count;
    char exclude[OPTIONS_EXCLUDE_MAX][OPTIONS_MODULE_NAME_MAX];
    bool stats;
    char stats_json[OPTIONS_PATH_MAX];
    char log_path[OPTIONS_PATH_MAX];
    uint64_t trace_allocs;
    unsigned verbose;
    uint64_t discover;                    /* 0: off; N: one heap allocation in N is followed */
    char discover_json[OPTIONS_PATH_MAX]; /* where discovery writes what it saw, at exit */
};

void options_set_defaults(struct options *options);

/* Parses "key=value[,key=value...]" (NULL or "" keeps the defaults).  Returns true on success;
 * otherwise writes a one-line message (without the "arenashim: error: " prefix) to error. */
bool options_parse(struct options *options, const char *text, char *error, size_t error_len);

/* For a secure-execution process (setuid, setgid, file capabilities: AT_SECURE), whose
 * environment belongs to a less privileged user: resets the keys that would let that user
 * create or overwrite files with the process's privileges (log_path, stats_json, discover_json) or weaken
 * its checks (on_dangling=recover, partial_reuse, revoke_batch) to their defaults.  Writes the names of
 * the keys that were set, separated by ", ", to dropped; returns how many there were. */
unsigned options_restrict_for_secure_execution(struct options *options, char *dropped, size_t len);

/* Parses "123", "4K", "1M", "256G", "1T" (binary units); false on junk or overflow. */
bool options_parse_size(const char *text, size_t len, size_t *value);

#endif
