/*
 * shim.h — the interposition layer: start-up, the heap, signals, system-call guards, fork.
 *
 * Layer: preload, shim (the top).  Exports the malloc family (malloc.c), the public API
 * (api.c), the SIGSEGV disposition (signals.c) and the system-call guards; start-up (init.c)
 * brings up every layer below in order, and fork.c keeps their locks whole across fork.
 */
#ifndef ARENASHIM_PRELOAD_SHIM_H
#define ARENASHIM_PRELOAD_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "binding.h"

/* --- init.c: start-up and exit ----------------------------------------------------------- */

/* Runs start-up if it has not run (another library's constructor may call us first). */
void shim_ensure_initialized(void);

/* --- malloc.c: the heap ------------------------------------------------------------------- */

/* Switches the heap path from jemalloc's mallocx family to its (faster) malloc family. */
void shim_heap_init(void);
/* discover=N: the heap's functions tell discovery of every allocation and free. */
void shim_heap_follow_for_discovery(void);
/* Served by the heap after a region could not serve it; warns once. */
void *shim_fallback_alloc(size_t size, size_t alignment);

/* --- signals.c: SIGSEGV -------------------------------------------------------------------- */

void signals_install(void);
/* Before a system call reads (write == false) or writes a buffer: the kernel would fail with
 * EFAULT on faulted region memory instead of faulting, so a dangling buffer is caught here
 * and handled as a dangling access (report; abort, or recover and go on). */
bool dangling_buffer_check(uintptr_t buffer, size_t len, bool write);
void signals_fork_child(void);

/* --- syscall_guard.c, fork.c --------------------------------------------------------------- */

void syscall_guard_init(void);
void fork_handlers_install(void);

#endif
