/*
 * roots.h — the roots of the process, read for a scan (see roots.c).
 */
#ifndef ARENASHIM_PRELOAD_ROOTS_H
#define ARENASHIM_PRELOAD_ROOTS_H

#include <setjmp.h>
#include <stdbool.h>

#include "core.h"
#include "stop_world.h"

/* A walk's state: in metadata (the scan must skip it), made once by the collector. */
struct scan_walk;
size_t roots_walk_size(void);

/* Before the world stops: how pages will be asked about, the metadata ranges to skip. */
void roots_prepare(struct scan_walk *walk, const struct stopped_world *world, uintptr_t own_stack_pointer);
/* World stopped: every mapping, the live chunks, every thread's registers (the caller's in
 * own_registers); false when /proc/self/maps could not be read whole (nothing marked is
 * trusted then). */
bool roots_scan(struct scan_walk *walk, char *maps_buffer, size_t maps_buffer_len, const jmp_buf *own_registers);
uint64_t roots_bytes_read(const struct scan_walk *walk);
/* After the world resumed. */
void roots_finish(struct scan_walk *walk);

#endif
