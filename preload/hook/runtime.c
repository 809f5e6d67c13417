/*
 * runtime.c — the fast paths of hooked calls (see hook.h).
 *
 * Layer: preload, hook.  Compiled with -mgeneral-regs-only: these run between a hooked function's
 * caller and its body, and between its return and the caller, where vector registers hold
 * arguments or results and x87 may hold a long double.  They touch only the thread's
 * shadow stack, its cache of region records and TLS, and return 0 whenever anything more
 * (a first call on a thread, a region that allocated, a mismatched return) needs the slow
 * path, which the stubs run with the whole register state saved.
 */
#include "hook.h"

__thread struct shadow_stack *hook_shadow TLS_INITIAL_EXEC;

struct hook hook_table[HOOKS_MAX];
unsigned hook_count;

static inline void region_open_fast(struct thread_state *thread, struct region *region,
                                    int32_t marker, uintptr_t begin_pc)
{
    region_init(region, thread, marker, begin_pc);
    region_push(thread, region);
    binding_sync_region(thread);
}

bool hook_fast_paths_enabled = true;

uintptr_t hook_enter_fast(uintptr_t index, uintptr_t *slot)
{
    if (!hook_fast_paths_enabled)
        return 0;
    return hook_enter_fast_unchecked(index, slot);
}

uintptr_t hook_enter_fast_unchecked(uintptr_t index, uintptr_t *slot)
{
    struct thread_state *thread = bound_thread;
    struct shadow_stack *shadow = hook_shadow;
    const struct hook *hook = &hook_table[index];
    if (thread == NULL || shadow == NULL || hook->kind != HOOK_MARKER ||
        shadow->depth >= SHADOW_STACK_ENTRIES || (unsigned)hook->marker >= shadow->marker_slots)
        return 0;
    bool open = shadow->marker_depth[hook->marker] == 0;
    struct region *region = bound_region_cache;
    if (open && region == NULL)
        return 0;
    /* Reserve the entry before filling it: a signal handler that calls a hooked function
     * meanwhile pushes above it instead of over it. */
    unsigned depth = shadow->depth;
    __atomic_store_n(&shadow->depth, depth + 1, __ATOMIC_RELAXED);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    struct shadow_entry *entry = &shadow->entries[depth];
    entry->slot = (uintptr_t)slot;
    entry->real_return = *slot;
    entry->hook = (uint32_t)index;
    entry->opened_region = open;
    entry->region = NULL;
    binding_suspension_check((uintptr_t)slot, thread);
    if (open) {
        bound_region_cache = region->outer;
        region_open_fast(thread, region, hook->marker, *slot);
        entry->region = region;
    }
    shadow->marker_depth[hook->marker]++;
    *slot = (uintptr_t)arenashim_exit_stub;
    return hook->resume;
}

uintptr_t hook_exit_fast(uintptr_t *slot)
{
    if (!hook_fast_paths_enabled)
        return 0;
    struct thread_state *thread = bound_thread;
    struct shadow_stack *shadow = hook_shadow;
    if (thread == NULL || shadow == NULL || shadow->depth == 0)
        return 0;
    unsigned depth = shadow->depth;
    struct shadow_entry *entry = &shadow->entries[depth - 1];
    if (entry->slot != (uintptr_t)slot)
        return 0;
    const struct hook *hook = &hook_table[entry->hook];
    if (hook->kind == HOOK_WATCH)
        return 0; /* discovery's bookkeeping is the slow path's */
    binding_suspension_check((uintptr_t)slot, thread);
    if (entry->opened_region) {
        /* Only an untouched region, still innermost, ends here: anything else has pages to
         * fault or regions to unwind, which is the slow path's work. */
        struct region *region = entry->region;
        if (!region_end_untouched(thread, region))
            return 0;
        binding_sync_region(thread);
        region->outer = bound_region_cache;
        bound_region_cache = region;
    }
    shadow->marker_depth[hook->marker]--;
    uintptr_t real_return = entry->real_return;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    __atomic_store_n(&shadow->depth, depth - 1, __ATOMIC_RELAXED);
    return real_return;
}
