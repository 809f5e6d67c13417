/*
 * api.c — the public API of include/arenashim.h.
 *
 * Layer: preload.  Regions opened here are marked '(api)' in reports, explicit arenas
 * '(arena)'.  Each entry records its caller, the site a report names as where the region
 * began or ended.
 */
#include "arenashim.h"

#include <string.h>

#include "arena.h"
#include "shim.h"
#include "collector.h"
#include "alloc_trace.h"

#include <jemalloc/jemalloc.h>

#define CALLER() ((uintptr_t)__builtin_return_address(0))
/* Where the caller's return address lives: the frame pointer, which __builtin_frame_address
 * makes these functions keep, plus one word. */
#define RETURN_SLOT() ((uintptr_t)__builtin_frame_address(0) + sizeof(void *))

SHIM_EXPORT int arenashim_region_begin(void)
{
    struct thread_state *thread = shim_current_thread();
    if (thread == NULL)
        return 0;
    shim_suspension_check(RETURN_SLOT(), thread);
    unsigned depth = region_begin(thread, MARKER_API, CALLER());
    shim_sync_region(thread);
    if (alloc_trace_region_stacks && thread->innermost)
        thread->innermost->begin_stack = alloc_trace_capture(MARKER_API, 1);
    return (int)depth;
}

SHIM_EXPORT void arenashim_region_end(void)
{
    struct thread_state *thread = shim_thread;
    shim_suspension_check(RETURN_SLOT(), thread);
    if (alloc_trace_region_stacks && thread && thread->innermost)
        thread->innermost->end_stack = alloc_trace_capture(MARKER_API, 1);
    if (thread == NULL || !region_end(thread, CALLER())) {
        static const char message[] =
            "arenashim: warning: arenashim_region_end() with no open region; ignored\n";
        if (core.options.verbose) {
            ssize_t ignored = write(shim_log_fd, message, sizeof message - 1);
            (void)ignored;
        }
        return;
    }
    shim_sync_region(thread);
    collector_after_region_end();
}

SHIM_EXPORT void arenashim_collect(void)
{
    shim_ensure_initialized();
    collector_run(true);
}

SHIM_EXPORT size_t arenashim_stats_json(char *buf, size_t len)
{
    shim_ensure_initialized();
    return stats_format_json(buf, len);
}

SHIM_EXPORT arenashim_arena *arenashim_arena_new(void)
{
    shim_ensure_initialized();
    return (arenashim_arena *)arena_create(CALLER());
}

SHIM_EXPORT void *arenashim_arena_alloc(arenashim_arena *arena, size_t size, size_t align)
{
    if (arena == NULL)
        return NULL;
    return arena_alloc((struct region *)arena, size, align);
}

SHIM_EXPORT void arenashim_arena_free(arenashim_arena *arena)
{
    if (arena == NULL)
        return;
    arena_destroy((struct region *)arena, shim_current_thread(), CALLER());
    collector_after_region_end();
}

SHIM_EXPORT void *arenashim_heapify(const void *p)
{
    if (p == NULL || !core_owns(p))
        return (void *)p;
    size_t size = region_object_size(p);
    void *copy = mallocx(size ? size : 1, 0);
    if (copy)
        memcpy(copy, p, size);
    return copy;
}
