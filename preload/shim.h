/*
 * shim.h — the preload layer's shared state and fast-path helpers.
 *
 * Layer: preload (interposition).  Binds threads to the core: each thread's innermost open
 * region sits in an initial-exec TLS slot, so the malloc fast path outside regions is one
 * TLS load and one branch, and free's is one range check.  Owns start-up (init.c), the
 * routing of the malloc family (malloc_shim.c), the caller filter for excluded modules
 * (caller_filter.c), the SIGSEGV handler (fault_handler.c) and reports (report.c).
 */
#ifndef ARENASHIM_PRELOAD_SHIM_H
#define ARENASHIM_PRELOAD_SHIM_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

#define SHIM_EXPORT __attribute__((visibility("default")))
#define SHIM_TLS __attribute__((tls_model("initial-exec")))

/* The calling thread's innermost open region (NULL outside regions) and its record. */
extern __thread struct region *shim_region SHIM_TLS;
extern __thread struct thread_state *shim_thread SHIM_TLS;
/* While set, the regions from shim_suspended_at outward are hidden from allocation: inside
 * dlopen, whose library constructors must not allocate into the caller's region.  dlopen is
 * hooked at its entry only (its return address must stay the caller's: the dynamic linker
 * searches the caller's RUNPATH), so the end is noticed lazily: the suspension ends at the
 * first hooked or API call whose return slot lies at or above dlopen's own, i.e. made from
 * the frame that called dlopen or one further out.  Until then that frame's allocations go
 * to the heap, which is always safe. */
extern __thread bool shim_suspended SHIM_TLS;
extern __thread struct region *shim_suspended_at SHIM_TLS;
extern __thread uintptr_t shim_suspended_below SHIM_TLS; /* dlopen's return slot */

/* --- init.c -------------------------------------------------------------------------------- */

void shim_ensure_initialized(void);
/* The thread's record, created on first use; NULL when metadata is exhausted. */
struct thread_state *shim_current_thread(void);
/* Mirror the core's innermost region into the TLS slot after a begin or end. */
static inline void shim_sync_region(struct thread_state *thread)
{
    struct region *region = thread ? thread->innermost : NULL;
    if (shim_suspended && region == shim_suspended_at)
        region = NULL;
    shim_region = region;
}
/* Ends the suspension when slot, the return slot of the hooked or API call being entered or
 * left, shows that the thread is back outside dlopen. */
static inline void shim_suspension_check(uintptr_t slot, struct thread_state *thread)
{
    if (unlikely(shim_suspended) && slot >= shim_suspended_below) {
        shim_suspended = false;
        shim_sync_region(thread);
    }
}
/* Writes "arenashim: error: MESSAGE" and exits with status 2 (start-up errors only). */
__attribute__((noreturn)) void shim_fatal_startup(const char *message);
/* Writes "arenashim: warning: MESSAGE" to the log in one write. */
void shim_warn(const char *message);
/* Is this process a launcher (a shell, env, strace, perf...) rather than the user's program? */
bool shim_is_launcher(void);
extern int shim_log_fd;

/* --- caller_filter.c ------------------------------------------------------------------------- */

#define CALLER_FILTER_MAX 32
struct caller_filter {
    uintptr_t low, high; /* the hull of all ranges */
    unsigned count;
    uintptr_t ranges[CALLER_FILTER_MAX][2];
};
extern struct caller_filter shim_caller_filter;

void caller_filter_init(const struct options *options);
/* Recomputed after dlopen: excluded modules loaded later join the filter. */
void caller_filter_refresh(void);

/* Does an allocation whose immediate caller is at pc bypass regions? */
static inline bool caller_is_excluded(const void *pc)
{
    uintptr_t address = (uintptr_t)pc;
    /* One range covering them all first: the program's own code lies far below the
     * libraries, so its calls are told apart with two compares. */
    if (address - shim_caller_filter.low >= shim_caller_filter.high - shim_caller_filter.low)
        return false;
    for (unsigned i = 0; i < shim_caller_filter.count; i++)
        if (address - shim_caller_filter.ranges[i][0] <
            shim_caller_filter.ranges[i][1] - shim_caller_filter.ranges[i][0])
            return true;
    return false;
}

/* --- fault_handler.c ------------------------------------------------------------------------- */

void fault_handler_install(void);
/* Before a system call reads (write == false) or writes a buffer: the kernel would fail with
 * EFAULT on faulted region memory instead of faulting, so a dangling buffer is caught here
 * and handled as a dangling access (report; abort, or recover and go on). */
bool dangling_buffer_check(uintptr_t buffer, size_t len, bool write);
void syscall_guard_init(void);
/* Reports frees after region end (verbose), through core.escape_hook. */
void fault_handler_set_escape_hook(void);
void fault_handler_fork_child(void);

/* --- report.c -------------------------------------------------------------------------------- */

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
/* The frames of an interned stack (stack_table.h). */
void report_stack(struct report *report, uint32_t stack_id);
/* The frames of the current thread from a signal context, or from here when ucontext is NULL. */
void report_backtrace(struct report *report, void *ucontext, unsigned skip);
/* Writes the whole report with one write() under a lock, so reports never interleave. */
void report_emit(const struct report *report);
void report_fork_child(void);
void report_lock(void);
void report_unlock(void);
void report_warm_up(void);

/* --- malloc_shim.c ---------------------------------------------------------------------------- */

/* Switches the heap path from jemalloc's mallocx family to its (faster) malloc family. */
void shim_heap_init(void);
/* Served by the heap after a region could not serve it; warns once. */
void *shim_fallback_alloc(size_t size, size_t alignment);
/* Writes the stats_json file and the stats summary (at exit, or before dying). */
void shim_write_stats(void);

#endif
