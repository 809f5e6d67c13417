/*
 * own_thread.h — arenashim's own threads (see own_thread.c).
 */
#ifndef ARENASHIM_PRELOAD_LIB_OWN_THREAD_H
#define ARENASHIM_PRELOAD_LIB_OWN_THREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Starts main(arg) on a detached thread of stack_bytes, born with every asynchronous signal
 * blocked; false when the thread cannot be made.  Its stack, when the kernel says, in
 * [*stack_low, *stack_high) (both may be NULL). */
bool own_thread_start(void *(*main)(void *), void *arg, size_t stack_bytes, uintptr_t *stack_low,
                      uintptr_t *stack_high);

#endif
