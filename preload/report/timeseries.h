/*
 * timeseries.h — the statistics over time, for the HTML report (see timeseries.c).
 *
 * Layer: preload, report.
 */
#ifndef ARENASHIM_PRELOAD_TIMESERIES_H
#define ARENASHIM_PRELOAD_TIMESERIES_H

#include <stdbool.h>
#include <stdint.h>

#include "text.h"

/* The most samples kept: when full, every other one is dropped and the interval doubles. */
#define SERIES_SAMPLES_MAX 256
/* The most markers (the API's and the arenas' regions included) with a series of their own. */
#define SERIES_MARKERS_MAX 32
/* Region sizes: bucket 0 holds regions of 0 bytes, bucket k (1..64) those of [2^(k-1), 2^k). */
#define SERIES_SIZE_BUCKETS 65
/* The most scans recorded one by one: when full, every other one is dropped and only one scan
 * in twice as many is recorded from then on. */
#define SERIES_SCANS_MAX 256

/* Starts recording when the statistics file is asked for (stats_json): maps the series' memory
 * (metadata), takes the first sample and starts watching the core's slow paths.  A no-op
 * otherwise: nothing is recorded and the fast paths are untouched either way. */
void timeseries_init(void);
bool timeseries_enabled(void);
/* A slow path ran (the collector, after a scan): a sample when the interval has passed. */
void timeseries_tick(void);
/* The same at the given CLOCK_MONOTONIC time in ns (tests drive the clock with this). */
void timeseries_tick_at(uint64_t now_ns);
/* One completed scan: when it started (CLOCK_MONOTONIC ns), how long it read with the world
 * running and with it stopped, the bytes read, the quarantine before and after, and the
 * chunks it released. */
void timeseries_note_scan(uint64_t start_ns, uint64_t concurrent_ns, uint64_t pause_ns, uint64_t bytes,
                          uint64_t quarantine_before, uint64_t quarantine_after, uint64_t chunks_released);
/* At exit (stats_write): a last sample, so that every series ends at the totals.
 * Async-signal-safe (it is also called before dying of a dangling access): it gives up when
 * the series are busy. */
void timeseries_finish(void);
/* The JSON member "timeseries": {...}, then ", " (nothing when not recording). */
void timeseries_append_json(struct text *out);
/* Held across fork() (shim/fork.c), so that the child's series are whole: a leaf lock. */
void timeseries_lock(void);
void timeseries_unlock(void);

#endif
