/*
 * alloc_trace.c — recording where region objects were allocated.
 *
 * Layer: preload.  With trace_allocs=N every Nth region allocation of a thread (a TLS
 * countdown, one decrement on the fast path) records its backtrace: libunwind's
 * unw_backtrace, interned in the stack table, and a {address, size, stack} record appended
 * to the region's trace log.  Hooked frames have the exit stub as return address, which no
 * unwinder can step through, so the real addresses are put back for the walk and the stub
 * reinstalled after it.  A thread already inside a capture (libunwind may allocate) is not
 * traced again.
 */
#include "alloc_trace.h"

#include <stdint.h>
#include <ucontext.h>

#include "hook.h"
#include "stack_table.h"
#include "trace_log.h"

#define UNW_LOCAL_ONLY
#include <libunwind.h>

__thread int64_t alloc_trace_countdown SHIM_TLS = INT64_MAX;
static __thread bool capturing SHIM_TLS;
bool alloc_trace_region_stacks;

void alloc_trace_init(void)
{
    /* Full region begin/end stacks cost two unwinds from a synthetic context per region (the
     * hook slow paths, no trace cache): for verbose, or when every allocation is traced.
     * Sampled tracing keeps the cheap single-frame sites. */
    alloc_trace_region_stacks = core.options.trace_allocs == 1 || core.options.verbose > 0;
    alloc_trace_thread_start();
    if (alloc_trace_region_stacks) {
        void *warm[4];
        unw_backtrace(warm, 4); /* first use takes locks and may allocate: not in a handler */
    }
}

void alloc_trace_thread_start(void)
{
    alloc_trace_countdown = core.options.trace_allocs ? (int64_t)core.options.trace_allocs : INT64_MAX;
}

uint32_t alloc_trace_capture(int32_t marker, unsigned skip)
{
    if (capturing)
        return 0;
    capturing = true;
    void *frames[STACK_DEPTH_MAX + 8];
    bool hooked = hook_shadow && hook_shadow->depth;
    if (hooked)
        shadow_restore_return_addresses();
    int depth = unw_backtrace(frames, (int)(sizeof frames / sizeof frames[0]));
    if (hooked)
        shadow_reinstall_all();
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
    bool hooked = hook_shadow && hook_shadow->depth;
    if (hooked)
        shadow_restore_return_addresses();
    /* The registers as they were at pc: the callee-saved ones are taken from here, which is
     * right for callers whose frames are found from the stack pointer (the usual -O2 code). */
    unw_context_t context;
    unw_cursor_t cursor;
    unw_getcontext(&context);
#if defined(__x86_64__)
    context.uc_mcontext.gregs[REG_RIP] = (greg_t)pc;
    context.uc_mcontext.gregs[REG_RSP] = (greg_t)stack_pointer;
#endif
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
    if (hooked)
        shadow_reinstall_all();
    capturing = false;
    return stack_table_intern(frames, depth, marker);
}

void alloc_trace_record(struct region *region, void *object, size_t size)
{
    alloc_trace_countdown = core.options.trace_allocs ? (int64_t)core.options.trace_allocs : INT64_MAX;
    if (capturing || core.options.trace_allocs == 0)
        return;
    /* Skip this function and the malloc entry point: frame 0 is the program's call. */
    uint32_t stack = alloc_trace_capture(region->marker, 2);
    struct stack_record *site = stack_table_get(stack);
    if (site)
        __atomic_add_fetch(&site->allocations, 1, __ATOMIC_RELAXED);
    trace_log_append(&region->trace, (uintptr_t)object, size, stack);
}
