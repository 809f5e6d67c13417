/*
 * alloc_trace.c — recording where region objects were allocated.
 *
 * Layer: preload, report.  With trace_allocs=N every Nth region allocation of a thread (the
 * region's own count compared with its sample_at on the fast path) records its backtrace: libunwind's
 * unw_backtrace, interned in the stack table, and a {address, size, stack} record appended
 * to the region's trace log.  Hooked frames have the exit stub as return address, which no
 * unwinder can step through: the walk runs inside the unwind fixup (report.h).  A thread
 * already inside a capture (libunwind may allocate) is not traced again.
 */
#include "alloc_trace.h"

#include <stdint.h>

#include "arch.h"
#include "report.h"
#include "visibility.h"

#define UNW_LOCAL_ONLY
#include <libunwind.h>

static __thread bool capturing TLS_INITIAL_EXEC;
bool alloc_trace_region_stacks;

void alloc_trace_init(void)
{
    /* Full region begin/end stacks cost two unwinds from a synthetic context per region (the
     * hook slow paths, no trace cache): for verbose, or when every allocation is traced.
     * Sampled tracing keeps the cheap single-frame sites. */
    alloc_trace_region_stacks = core_config.options.trace_allocs == 1 || core_config.options.verbose > 0;
    if (alloc_trace_region_stacks) {
        void *warm[4];
        unw_backtrace(warm, 4); /* first use takes locks and may allocate: not in a handler */
    }
}

__attribute__((noinline)) uint32_t alloc_trace_capture(int32_t marker, unsigned skip)
{
    if (capturing)
        return 0;
    capturing = true;
    void *frames[STACK_DEPTH_MAX + 8];
    int depth = 0;
    if (report_unwind_begin()) {
        depth = unw_backtrace(frames, (int)(sizeof frames / sizeof frames[0]));
        report_unwind_end();
    }
    capturing = false;
    if (depth <= (int)skip)
        return 0;
    return stack_table_intern((const uintptr_t *)(frames + skip), (unsigned)(depth - (int)skip), marker);
}

uint32_t alloc_trace_capture_at(int32_t marker, uintptr_t pc, uintptr_t stack_pointer, bool exact_pc)
{
    if (capturing)
        return 0;
    capturing = true;
    uintptr_t frames[STACK_DEPTH_MAX];
    unsigned depth = 0;
    if (!report_unwind_begin()) {
        capturing = false;
        return 0;
    }
    /* The registers as they were at pc: the callee-saved ones are taken from here, which is
     * right for callers whose frames are found from the stack pointer (the usual -O2 code). */
    unw_context_t context;
    unw_cursor_t cursor;
    unw_getcontext(&context);
    context_set_pc_and_stack(&context, pc, stack_pointer);
    /* exact_pc: pc is an instruction about to run (a function's entry), not a return
     * address, which unwinders otherwise look up at pc - 1. */
    if (unw_init_local2(&cursor, &context, exact_pc ? UNW_INIT_SIGNAL_FRAME : 0) == 0) {
        do {
            unw_word_t ip = 0;
            if (unw_get_reg(&cursor, UNW_REG_IP, &ip) != 0 || ip == 0)
                break;
            frames[depth++] = (uintptr_t)ip;
        } while (depth < STACK_DEPTH_MAX && unw_step(&cursor) > 0);
    }
    report_unwind_end();
    capturing = false;
    return stack_table_intern(frames, depth, marker);
}

__attribute__((noinline)) void alloc_trace_record(struct region *region, void *object, size_t size)
{
    region->sample_at = region->allocs + core_config.trace_period;
    if (capturing || core_config.trace_period == 0)
        return;
    /* Skip alloc_trace_capture, this function and the allocation function that called it
     * (malloc's fast path and slow path reach here by tail calls, calloc and the others
     * directly): frame 0 is the program's call. */
    uint32_t stack = alloc_trace_capture(region->marker, 3);
    struct stack_record *site = stack_table_get(stack);
    if (site)
        __atomic_add_fetch(&site->allocations, 1, __ATOMIC_RELAXED);
    trace_log_append(&region->trace, (uintptr_t)object, size, stack);
}

__attribute__((noinline)) void *alloc_trace_sampled(struct region *region, void *object, size_t size)
{
    alloc_trace_record(region, object, size);
    return object;
}
