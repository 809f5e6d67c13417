/*
 * arena.c — explicit arenas (arenashim_arena_new/alloc/free).
 *
 * Layer: core.  An arena is a region that no thread's stack holds: the program allocates
 * from it by handle and frees it whole.  It shares the region machinery, so freeing an
 * arena faults and quarantines its memory exactly as a region end does; the tail of its
 * last chunk goes to the spares of the thread that frees it.
 */
#include "internal.h"

struct region *arena_create(uintptr_t begin_pc)
{
    struct region *arena = region_create(NULL, MARKER_ARENA, begin_pc);
    if (arena)
        stats_add(&core_counters.retired.regions_begun, 1);
    return arena;
}

void *arena_alloc(struct region *arena, size_t size, size_t alignment)
{
    if (alignment == 0)
        alignment = OBJECT_ALIGN;
    if (alignment & (alignment - 1))
        return NULL;
    return region_alloc_aligned(arena, size, alignment);
}

void arena_destroy(struct region *arena, struct thread_state *caller, uintptr_t end_pc)
{
    region_finish(arena, caller, end_pc);
}
