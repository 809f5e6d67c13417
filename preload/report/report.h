/*
 * report.h — building and writing reports without malloc or stdio.
 *
 * Layer: preload, report.  Reports are written from the SIGSEGV handler, so everything here
 * is async-signal-safe in practice: text is built in a caller-provided buffer with hand-made
 * number formatting, frames are named by the symbolizer (dladdr and a cached read of the
 * module's file), and backtraces come from libunwind, warmed up at start-up because its first
 * use takes a lock and may allocate.  One write() to the log under a lock per report keeps
 * reports from several threads whole.
 *
 * Hooked frames return into the exit stub, which no unwinder can step through: the layer that
 * hijacks return addresses registers a fixup (report_set_unwind_fixup) that puts the real
 * ones back for the walk and the stubs after it.
 *
 * Unwinders hold locks of their own (libunwind's caches and memory pools, pthread mutexes)
 * while they walk: a fork at that moment leaves the child's copies locked, and the child's
 * first backtrace waits for ever.  So every walk runs between report_unwind_begin and
 * report_unwind_end, and fork (report_unwind_fork_prepare, before any other lock) waits until
 * no walk is running; a walk that would start meanwhile is skipped (begin returns false), never
 * waited for, so no lock order can deadlock.
 */
#ifndef ARENASHIM_PRELOAD_REPORT_H
#define ARENASHIM_PRELOAD_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An async-signal-safe text buffer: no malloc, no stdio. */
struct report {
    size_t len;
    char text[16384];
};
void report_init(struct report *report);
void report_string(struct report *report, const char *s);
void report_hex(struct report *report, uintptr_t value);
void report_decimal(struct report *report, uint64_t value);
/* "    #i 0xPC module+0xOFF (symbol+0xOFF)\n" */
void report_frame(struct report *report, unsigned index, uintptr_t pc);
/* The same for a pc that is a return address (named by the call before it) or not. */
void report_frame_at(struct report *report, unsigned index, uintptr_t pc, bool return_address);
/* The frames of an interned stack (core.h's stack table). */
void report_stack(struct report *report, uint32_t stack_id);
/* The frames of the current thread from a signal context, or from here when ucontext is NULL. */
void report_backtrace(struct report *report, void *ucontext, unsigned skip);
/* Writes the whole report to the log with one write() under a lock: reports never interleave. */
void report_emit(const struct report *report);
void report_fork_child(void);
void report_lock(void);
void report_unlock(void);
void report_warm_up(void);

/* Around every stack walk: before puts real return addresses where the walk will look,
 * after undoes it.  Both run on the walking thread; NULL when nothing hijacks returns. */
struct unwind_fixup {
    void (*before)(void);
    void (*after)(void);
};
void report_set_unwind_fixup(const struct unwind_fixup *fixup);
/* Around every stack walk (alloc_trace.c, discover.c, report_backtrace): false when a fork is
 * under way, and the walk must be skipped; after true, report_unwind_end when done. */
bool report_unwind_begin(void);
void report_unwind_end(void);
/* fork: prepare waits until no walk runs and keeps new ones out; parent and child let them in. */
void report_unwind_fork_prepare(void);
void report_unwind_fork_parent(void);
void report_unwind_fork_child(void);

#endif
