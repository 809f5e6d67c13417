/*
 * api.c — the public API of include/arenashim.h.
 *
 * Layer: preload, shim.  Regions opened here are marked '(api)' in reports, explicit arenas
 * '(arena)'.  Each entry records its caller, the site a report names as where the region
 * began or ended.
 */
#include "arenashim.h"

#include <string.h>

#include "alloc_trace.h"
#include "collector.h"
#include "log.h"
#include "shim.h"
#include "stats_out.h"

#include <jemalloc/jemalloc.h>

#define CALLER() ((uintptr_t)__builtin_return_address(0))
/* Where the caller's return address lives: the frame pointer, which __builtin_frame_address
 * makes these functions keep, plus one word. */
#define RETURN_SLOT() ((uintptr_t)__builtin_frame_address(0) + sizeof(void *))

EXPORTED int arenashim_region_begin(void)
{
    shim_ensure_initialized();
    struct thread_state *thread = binding_current_thread();
    if (thread == NULL)
        return 0;
    binding_suspension_check(RETURN_SLOT(), thread);
    unsigned depth = region_begin(thread, MARKER_API, CALLER());
    binding_sync_region(thread);
    if (alloc_trace_region_stacks && thread->innermost)
        thread->innermost->begin_stack = alloc_trace_capture(MARKER_API, 1);
    return (int)depth;
}

EXPORTED void arenashim_region_end(void)
{
    struct thread_state *thread = bound_thread;
    binding_suspension_check(RETURN_SLOT(), thread);
    if (alloc_trace_region_stacks && thread && thread->innermost)
        thread->innermost->end_stack = alloc_trace_capture(MARKER_API, 1);
    if (thread == NULL || !region_end(thread, CALLER())) {
        if (core_config.options.verbose)
            log_warn("arenashim_region_end() with no open region; ignored");
        return;
    }
    binding_sync_region(thread);
    collector_after_region_end();
}

EXPORTED void arenashim_collect(void)
{
    shim_ensure_initialized();
    collector_run(true);
}

EXPORTED size_t arenashim_stats_json(char *buf, size_t len)
{
    shim_ensure_initialized();
    stats_count_kernel_mappings();
    return stats_format_json(buf, len);
}

EXPORTED arenashim_arena *arenashim_arena_new(void)
{
    shim_ensure_initialized();
    return (arenashim_arena *)arena_create(CALLER());
}

EXPORTED void *arenashim_arena_alloc(arenashim_arena *arena, size_t size, size_t align)
{
    if (arena == NULL)
        return NULL;
    return arena_alloc((struct region *)arena, size, align);
}

EXPORTED void arenashim_arena_free(arenashim_arena *arena)
{
    if (arena == NULL)
        return;
    arena_destroy((struct region *)arena, binding_current_thread(), CALLER());
    collector_after_region_end();
}

EXPORTED void *arenashim_heapify(const void *p)
{
    if (p == NULL || !core_owns(p))
        return (void *)p;
    size_t size = region_object_size(p);
    void *copy = mallocx(size ? size : 1, 0);
    if (copy)
        memcpy(copy, p, size);
    return copy;
}
