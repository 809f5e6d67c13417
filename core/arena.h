/*
 * arena.h — explicit arenas on top of the region machinery (see arena.c).
 */
#ifndef ARENASHIM_CORE_ARENA_H
#define ARENASHIM_CORE_ARENA_H

#include "internal.h"

struct region *arena_create(uintptr_t begin_pc);
/* alignment: a power of two, 0 meaning 16; NULL when it cannot be served from chunks. */
void *arena_alloc(struct region *arena, size_t size, size_t alignment);
void arena_destroy(struct region *arena, struct thread_state *caller, uintptr_t end_pc);

#endif
