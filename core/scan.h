/*
 * scan.h — the conservative scan's private data: quarantine snapshot, marks, the word kernel.
 *
 * Layer: core, private (core.h has the three steps the preload drives).  A scan (1)
 * snapshots the quarantine into a bitmap, (2) reads every root word by word, marking
 * quarantined chunks that some word points into, and (3) releases the unmarked ones to the
 * available set.  Step 2 runs on several marking threads at once, partly while the program
 * runs (the preload's collector decides what is read when, and stops the world for the rest);
 * marks are atomic bits, and the referrer list takes a lock.  Steps 1 and 3 take the core's
 * lock.  The bitmaps live in metadata, which the scan itself skips.
 */
#ifndef ARENASHIM_CORE_SCAN_H
#define ARENASHIM_CORE_SCAN_H

#include "internal.h"

/* The word kernel, chosen at start-up: scalar, or vectorised where the CPU has it
 * (core/arch/scan_kernel_*.c). */
typedef void (*scan_kernel_fn)(const uintptr_t *words, size_t count, const struct scan_source *source);
void scan_kernel_scalar(const uintptr_t *words, size_t count, const struct scan_source *source);
scan_kernel_fn scan_kernel_select(void);
/* The slow part of the kernel: a word that falls inside the reservation. */
void scan_candidate(const uintptr_t *location, uintptr_t value, const struct scan_source *source);

#endif
