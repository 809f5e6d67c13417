/*
 * dangling.h — reporting dangling accesses and late frees (see dangling.c).
 */
#ifndef ARENASHIM_PRELOAD_DANGLING_H
#define ARENASHIM_PRELOAD_DANGLING_H

#include "core.h"

/* The report of a dangling access; context is the signal's ucontext, or NULL from a
 * system-call guard; site is the allocation stack escape_note found (0: none). */
void report_dangling(const struct dangling_info *info, void *context, uint32_t site, bool write);
/* free() of an object whose region has ended: with verbose, one report per allocation site
 * (or one in all, when allocations are not traced). */
void report_escaped_free(uintptr_t address);
void dangling_fork_child(void);

#endif
