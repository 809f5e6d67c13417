/*
 * unwind_guard.h — longjmp, C++ exceptions and backtraces across hooked frames.
 */
#ifndef ARENASHIM_PRELOAD_UNWIND_GUARD_H
#define ARENASHIM_PRELOAD_UNWIND_GUARD_H

/* Finds the real longjmp family and backtrace (the C++ runtime's entries are found on first
 * use: it may be loaded later). */
void unwind_guard_init(void);

#endif
