/*
 * shadow_stack.c — the slow paths of hooked calls, and unwinding the shadow stack.
 *
 * Layer: preload, hook.  hook_enter_slow sets a thread up (its record, shadow stack and cache of
 * region records) and handles the dynamic linker's hooks (dlopen's entry, the link-map
 * change); hook_exit_slow ends regions that allocated
 * (faulting their pages) and repairs the shadow stack when a return does not match its top
 * entry.  Both run with the whole register state saved by the stubs, so they may call
 * anything.  shadow_unwind_to and friends serve unwind_guard.c (longjmp, C++ exceptions).
 */
#include "hook.h"
#include "markers.h"
#include "collector.h"
#include "alloc_trace.h"
#include "log.h"
#include "discover.h"

#include <string.h>

static void (*link_map_listener)(void);

/* Shadow stacks of exited threads, for the next threads. */
static struct {
    spin_lock lock;
    struct shadow_stack *free;
    unsigned marker_slots;
} shadow_pool = { .lock = SPIN_LOCK_INIT };

void hook_set_marker_slots(unsigned count)
{
    shadow_pool.marker_slots = count;
}

static size_t shadow_stack_bytes(unsigned marker_slots)
{
    return sizeof(struct shadow_stack) + (size_t)marker_slots * sizeof(uint16_t);
}

struct shadow_stack *shadow_stack_of_thread(void)
{
    if (hook_shadow != NULL)
        return hook_shadow;
    spin_lock_acquire(&shadow_pool.lock);
    struct shadow_stack *shadow = shadow_pool.free;
    if (shadow)
        shadow_pool.free = shadow->next_free;
    spin_lock_release(&shadow_pool.lock);
    if (shadow == NULL) {
        shadow = metadata_map(shadow_stack_bytes(shadow_pool.marker_slots));
        if (shadow == NULL)
            return NULL;
        shadow->marker_slots = shadow_pool.marker_slots;
    }
    hook_shadow = shadow;
    return shadow;
}

void shadow_stack_thread_exit(void)
{
    struct shadow_stack *shadow = hook_shadow;
    if (shadow == NULL)
        return;
    /* Frames a thread leaves by pthread_exit never return: their depths are cleared. */
    shadow->depth = 0;
    memset(shadow->marker_depth, 0, shadow->marker_slots * sizeof shadow->marker_depth[0]);
    hook_shadow = NULL;
    spin_lock_acquire(&shadow_pool.lock);
    shadow->next_free = shadow_pool.free;
    shadow_pool.free = shadow;
    spin_lock_release(&shadow_pool.lock);
}

void shadow_stack_fork_child(void)
{
    spin_lock_reset(&shadow_pool.lock);
}

void hook_set_link_map_listener(void (*listener)(void))
{
    link_map_listener = listener;
}

static bool prepare_thread(void)
{
    if (binding_current_thread() == NULL)
        return false;
    if (shadow_stack_of_thread() == NULL)
        return false;
    return binding_fill_region_cache();
}

/* dlopen's entry: library constructors run inside it and must not allocate into the
 * caller's region, so the caller's regions are hidden until the thread is back above this
 * frame (shim.h).  The return address is left alone: the dynamic linker reads it to find
 * the caller's search path.  A dlopen from a constructor stays under the outer suspension. */
static void suspend_for_dlopen(uintptr_t *slot)
{
    binding_suspend_until_above((uintptr_t)slot, bound_thread);
}

/* The link map changed (r_debug.r_brk): resolve waiting markers in new objects, before their
 * constructors run; with regions hidden, as nothing here belongs to a region. */
static void link_map_changed(void)
{
    struct region *saved = bound_region;
    bound_region = NULL;
    markers_after_link_map_change();
    if (link_map_listener)
        link_map_listener();
    bound_region = saved;
}

uintptr_t hook_enter_slow(uintptr_t index, uintptr_t *slot)
{
    const struct hook *hook = &hook_table[index];
    if (hook->kind == HOOK_LINK_MAP) {
        link_map_changed();
        return hook->resume;
    }
    if (!prepare_thread() || hook_shadow->depth >= SHADOW_STACK_ENTRIES)
        return hook->resume; /* cannot track this call: it runs unhooked */
    if (hook->kind == HOOK_DLOPEN) {
        suspend_for_dlopen(slot);
        return hook->resume;
    }
    uintptr_t resume = hook_enter_fast_unchecked(index, slot);
    if (resume == 0)
        return hook->resume;
    struct shadow_entry *entry = &hook_shadow->entries[hook_shadow->depth - 1];
    if (alloc_trace_region_stacks && entry->region) {
        /* From the hooked function's entry, with its real return address in place. */
        *slot = entry->real_return;
        entry->region->begin_stack = alloc_trace_capture_at(entry->region->marker, hook->function,
                                                            (uintptr_t)slot, true);
        *slot = (uintptr_t)arenashim_exit_stub;
    }
    return resume;
}

/* Closes one shadow entry: ends the region it opened (and any left open inside it). */
static void close_entry(struct shadow_entry *entry, uintptr_t end_pc)
{
    struct thread_state *thread = bound_thread;
    const struct hook *hook = &hook_table[entry->hook];
    if (hook->kind == HOOK_WATCH) {
        discover_call_returned(entry->invocation);
        return;
    }
    if (entry->opened_region && thread) {
        /* Regions opened inside the call and never ended (API imbalance) end with it. */
        bool found = false;
        for (struct region *r = thread->innermost; r; r = r->outer)
            if (r == entry->region)
                found = true;
        while (found && thread->innermost) {
            struct region *innermost = thread->innermost;
            region_end(thread, end_pc);
            if (innermost == entry->region)
                break;
        }
        binding_sync_region(thread);
    }
    struct shadow_stack *shadow = hook_shadow;
    if ((unsigned)hook->marker < shadow->marker_slots && shadow->marker_depth[hook->marker] > 0)
        shadow->marker_depth[hook->marker]--;
}

uintptr_t hook_exit_slow(uintptr_t *slot)
{
    struct shadow_stack *shadow = hook_shadow;
    unsigned depth = shadow ? shadow->depth : 0;
    unsigned i = depth;
    while (i > 0 && shadow->entries[i - 1].slot != (uintptr_t)slot)
        i--;
    if (i == 0)
        log_internal_error("a hooked function returned through the exit stub, but no shadow-stack "
                           "entry matches its frame; aborting");
    /* Entries above the match belong to frames that were left without returning. */
    while (shadow->depth > i) {
        struct shadow_entry *abandoned = &shadow->entries[shadow->depth - 1];
        close_entry(abandoned, abandoned->real_return);
        shadow->depth--;
    }
    struct shadow_entry *entry = &shadow->entries[i - 1];
    uintptr_t real_return = entry->real_return;
    binding_suspension_check((uintptr_t)slot, bound_thread);
    if (alloc_trace_region_stacks && entry->opened_region && entry->region &&
        bound_thread && bound_thread->innermost == entry->region) {
        /* The stack of the return: the caller's frames, with this frame's slot restored. */
        entry->region->end_stack = alloc_trace_capture_at(entry->region->marker, real_return,
                                                          (uintptr_t)(slot + 1), false);
    }
    close_entry(entry, real_return);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    shadow->depth = i - 1;
    collector_after_region_end();
    return real_return;
}

void shadow_unwind_to(uintptr_t stack_pointer)
{
    struct shadow_stack *shadow = hook_shadow;
    if (shadow == NULL)
        return;
    while (shadow->depth > 0) {
        struct shadow_entry *entry = &shadow->entries[shadow->depth - 1];
        if (entry->slot >= stack_pointer)
            break;
        close_entry(entry, entry->real_return);
        shadow->depth--;
    }
}

void shadow_restore_return_addresses(void)
{
    struct shadow_stack *shadow = hook_shadow;
    if (shadow == NULL)
        return;
    for (unsigned i = shadow->depth; i > 0; i--) {
        struct shadow_entry *entry = &shadow->entries[i - 1];
        if (*(uintptr_t *)entry->slot == (uintptr_t)arenashim_exit_stub)
            *(uintptr_t *)entry->slot = entry->real_return;
    }
}

void shadow_reinstall_return_addresses(uintptr_t stack_pointer)
{
    shadow_unwind_to(stack_pointer);
    shadow_reinstall_all();
}

void shadow_reinstall_all(void)
{
    struct shadow_stack *shadow = hook_shadow;
    if (shadow == NULL)
        return;
    for (unsigned i = 0; i < shadow->depth; i++) {
        struct shadow_entry *entry = &shadow->entries[i];
        if (*(uintptr_t *)entry->slot == entry->real_return)
            *(uintptr_t *)entry->slot = (uintptr_t)arenashim_exit_stub;
    }
}

void shadow_fixup_before_walk(void)
{
    if (hook_shadow && hook_shadow->depth)
        shadow_restore_return_addresses();
}

void shadow_fixup_after_walk(void)
{
    if (hook_shadow && hook_shadow->depth)
        shadow_reinstall_all();
}
