/*
 * write_tracking.h — which pages the program wrote while a scan read them (see
 * write_tracking.c).
 */
#ifndef ARENASHIM_PRELOAD_WRITE_TRACKING_H
#define ARENASHIM_PRELOAD_WRITE_TRACKING_H

#include <stdbool.h>
#include <stdint.h>

/* Can this process track writes (asked once; again after fork)?  false on kernels before 6.7,
 * where userfaultfd is forbidden, or when the program's own use of it got in the way. */
bool write_tracking_available(void);
/* Why not, for verbose=1: a short phrase ("PAGEMAP_SCAN is missing (Linux 6.7+)"). */
const char *write_tracking_unavailable_reason(void);
/* World running, before [start, end) (one mapping) is read: from now on every page written in
 * it is reported by write_tracking_written.  false when the range cannot be tracked (then
 * it must be read with the world stopped). */
bool write_tracking_arm(uintptr_t start, uintptr_t end);
/* World stopped, from any marking thread: calls visit for each run of [start, end) written
 * since it was armed.  false when the range is no longer (or only partly) tracked: unmapped
 * and mapped anew, moved, registered by the program: the caller then reads all of it. */
bool write_tracking_written(uintptr_t start, uintptr_t end,
                            void (*visit)(uintptr_t start, uintptr_t end, void *data), void *data);
/* World running (precleaning): the same, and each written page is protected again in the same
 * step, so that a write after this call is reported by the next one. */
bool write_tracking_written_rearm(uintptr_t start, uintptr_t end,
                                  void (*visit)(uintptr_t start, uintptr_t end, void *data), void *data);
/* In a fork child: the parent's userfaultfd belongs to the parent's memory. */
void write_tracking_fork_child(void);

#endif
