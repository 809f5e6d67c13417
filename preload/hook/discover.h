/*
 * discover.h — which functions would make good regions (see discover.c).
 */
#ifndef ARENASHIM_PRELOAD_DISCOVER_H
#define ARENASHIM_PRELOAD_DISCOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"

/* Start-up, with discover=N: makes the tables (false when metadata cannot hold them). */
bool discover_init(void);
/* A heap allocation of the program (the shim's heap wrappers, discover mode only): one in N
 * is followed. */
void discover_allocated(void *object, size_t size);
/* Before a heap free (or a realloc that moves or frees): a followed object is accounted. */
void discover_freeing(void *object);
/* A followed call returned (the exit stub, longjmp, an exception): from hook/shadow_stack.c. */
void discover_call_returned(uint64_t invocation);
/* At exit: objects still allocated count as leaked; writes discover_json. */
void discover_write(void);
/* In a fork child: the parent's counts stay the parent's. */
void discover_fork_child(void);

#endif
