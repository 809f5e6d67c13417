/*
 * stats_out.h — the statistics as JSON and as the exit summary (see stats_out.c).
 */
#ifndef ARENASHIM_PRELOAD_STATS_OUT_H
#define ARENASHIM_PRELOAD_STATS_OUT_H

#include <stddef.h>

/* Counts the process's kernel mappings now, for "kernel_mappings" in the JSON: counted at
 * these points only (at exit, and per call of arenashim_stats_json), so that formatting twice
 * gives the same text (the snprintf protocol), though mappings come and go in between. */
void stats_count_kernel_mappings(void);
/* snprintf-like: the whole object is len bytes or fewer, the return value is what it needs. */
size_t stats_format_json(char *buf, size_t len);
size_t stats_format_text(char *buf, size_t len);
/* The exit summary (stats=1) to the log and the stats_json file, as options ask; at exit, or
 * before dying of a dangling access. */
void stats_write(void);

#endif
