/*
 * scan_workers.h — the threads that mark in parallel (see scan_workers.c).
 */
#ifndef ARENASHIM_PRELOAD_SCAN_WORKERS_H
#define ARENASHIM_PRELOAD_SCAN_WORKERS_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A job of a parallel pass: called once per index, on whichever thread claims it. */
typedef void (*scan_job_fn)(size_t index, void *data);
/* Called instead of finishing a job whose memory faulted under a recoverable pass. */
typedef void (*scan_job_failed_fn)(size_t index, void *data);

/* Makes sure `threads` marking threads (the caller counts as one) exist, up to
 * SCAN_WORKERS_MAX; returns how many there are (1 when no helper could be made). */
unsigned scan_workers_start(unsigned threads);
/* Runs job for every index of [0, count) on the caller and the helpers, and returns when all
 * are done.  With failed != NULL the pass is recoverable: a job that faults (SIGSEGV: the
 * program unmapped or protected what it was reading) is abandoned and reported to failed. */
void scan_workers_run(size_t count, scan_job_fn job, scan_job_failed_fn failed, void *data);
/* The helpers' thread ids (stop_world leaves them running) and stacks (the scan skips them:
 * they hold nothing of the program's). */
unsigned scan_workers_helpers(pid_t *tids, uintptr_t (*stacks)[2], unsigned max);
/* From the SIGSEGV handler: a fault in a recoverable job of this thread jumps back to its
 * pass (does not return then); false when the fault is not one. */
bool scan_workers_recover_fault(const siginfo_t *info);
/* In a fork child: the helpers stayed in the parent. */
void scan_workers_fork_child(void);

#endif
