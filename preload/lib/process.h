/*
 * process.h — what kind of process this is.
 *
 * Layer: preload, lib.
 */
#ifndef ARENASHIM_PRELOAD_LIB_PROCESS_H
#define ARENASHIM_PRELOAD_LIB_PROCESS_H

#include <stdbool.h>

/* Is this process a launcher (a shell, env, strace, perf, prlimit...) that starts the user's
 * program rather than being it?  Such a process hands the strict role of the root process to
 * the program it starts, and writes no statistics over that program's file. */
bool process_is_launcher(void);

#endif
