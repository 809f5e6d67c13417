/*
 * roots.h — the roots of the process, read for a scan (see roots.c).
 */
#ifndef ARENASHIM_PRELOAD_ROOTS_H
#define ARENASHIM_PRELOAD_ROOTS_H

#include <setjmp.h>
#include <stdbool.h>

#include "core.h"
#include "stop_world.h"

/* Who runs the scan.  A program thread (arenashim_collect, or a fallback) has roots of its
 * own: its stack from stack_pointer (the collector's entry frame) up, and its registers.
 * The collector thread has none: its stack [stack_low, stack_high) is skipped. */
struct roots_caller {
    bool is_program;
    uintptr_t stack_pointer;
    uintptr_t stack_low, stack_high;
};

/* A walk's state: in metadata (the scan must skip it), made once by the collector. */
struct scan_walk;
size_t roots_walk_size(void);
/* Its job and range lists (metadata), made once; false when there is no memory for them. */
bool roots_buffers(struct scan_walk *walk);

/* Before a scan: how pages will be asked about, the ranges to skip. */
void roots_prepare(struct scan_walk *walk, const struct stopped_world *world, const struct roots_caller *caller);
/* World running: arms and reads every private anonymous mapping but the stacks; false when
 * writes cannot be tracked here (then roots_scan_stopped reads everything). */
bool roots_scan_concurrent(struct scan_walk *walk, char *maps_buffer, size_t maps_buffer_len);
/* World stopped: everything the concurrent phase did not read, or cannot vouch for, and the
 * pages written since it read them; the live chunks, every thread's registers (the caller's in
 * own_registers).  false when /proc/self/maps could not be read whole (nothing marked is
 * trusted then). */
bool roots_scan_stopped(struct scan_walk *walk, char *maps_buffer, size_t maps_buffer_len,
                        const jmp_buf *own_registers);
/* After the stop: is location in a stack it read, and whose?  (A referrer the concurrent
 * phase found there is named after the stack, not the mapping.) */
bool roots_stack_owner(const struct scan_walk *walk, uintptr_t location, uint32_t *thread);
/* Bytes read in all, and in the stop. */
uint64_t roots_bytes_read(const struct scan_walk *walk);
uint64_t roots_bytes_read_stopped(const struct scan_walk *walk);
/* After the world resumed. */
void roots_finish(struct scan_walk *walk);

#endif
