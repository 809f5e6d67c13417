/*
 * collector.h — the conservative scan of the whole process (see collector.c).
 */
#ifndef ARENASHIM_PRELOAD_COLLECTOR_H
#define ARENASHIM_PRELOAD_COLLECTOR_H

#include <stdbool.h>

#include "core.h"

void collector_init(void);
/* Scans now; with wait_for_running, waits for a scan in progress, else skips. */
void collector_run(bool wait_for_running);
/* The automatic trigger: scans when quarantine holds more than quarantine_max. */
void collector_after_region_end(void);
void collector_fork_child(void);
void collector_lock(void);
void collector_unlock(void);

#endif
