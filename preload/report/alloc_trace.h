/*
 * alloc_trace.h — backtraces of region allocations (trace_allocs) and of region begin/end.
 *
 * Layer: preload, report.
 */
#ifndef ARENASHIM_PRELOAD_ALLOC_TRACE_H
#define ARENASHIM_PRELOAD_ALLOC_TRACE_H

#include <stdbool.h>
#include <stdint.h>

#include "core.h"
#include "visibility.h"

/* Counts region allocations down to the next traced one.  It starts at 0 on each thread, so
 * the thread's first region allocation sets it (to trace_allocs, or INT64_MAX when tracing is
 * off) on the slow path. */
extern __thread int64_t alloc_trace_countdown TLS_INITIAL_EXEC;
/* Whether region begin and end record full backtraces (verbose or trace_allocs). */
extern bool alloc_trace_region_stacks;

void alloc_trace_init(void);
/* Records the allocation site of a fresh region object (the countdown reached zero). */
void alloc_trace_record(struct region *region, void *object, size_t size);
/* Interns the calling thread's backtrace, skipping our own frames; 0 when unavailable. */
uint32_t alloc_trace_capture(int32_t marker, unsigned skip);
/* The backtrace as seen from pc with the given stack pointer (a hooked function's entry or
 * return, where our own frames must not appear). */
uint32_t alloc_trace_capture_at(int32_t marker, uintptr_t pc, uintptr_t stack_pointer, bool exact_pc);

/* The allocation fast paths call this after each region allocation. */
static inline void alloc_trace_maybe(struct region *region, void *object, size_t size)
{
    if (unlikely(--alloc_trace_countdown <= 0))
        alloc_trace_record(region, object, size);
}

#endif
