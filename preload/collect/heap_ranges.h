/*
 * heap_ranges.h — jemalloc's extents, recorded through its extent hooks (see heap_ranges.c).
 */
#ifndef ARENASHIM_PRELOAD_HEAP_RANGES_H
#define ARENASHIM_PRELOAD_HEAP_RANGES_H

#include <stdbool.h>
#include <stdint.h>

void heap_ranges_init(void);
/* Hooks arenas initialised since the last call (runs before each scan). */
void heap_ranges_refresh(void);
bool heap_ranges_contains(uintptr_t address);
void heap_ranges_fork_child(void);

#endif
