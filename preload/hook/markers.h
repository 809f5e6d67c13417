/*
 * markers.h — ARENASHIM_REGIONS: parsing, resolution and hooking of region markers.
 */
#ifndef ARENASHIM_PRELOAD_MARKERS_H
#define ARENASHIM_PRELOAD_MARKERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* At start-up: parse, resolve against loaded modules and hook.  A marker that does not
 * parse, an unqualified name found nowhere, or a function that cannot be hooked safely is
 * fatal here (exit status 2); MODULE: markers for modules not loaded yet wait for dlopen. */
void markers_init(void);
/* After each dlopen: resolve and hook waiting markers in new modules; refusals are reported,
 * never fatal. */
void markers_after_link_map_change(void);
/* At exit: list markers that never resolved or were refused. */
void markers_report_unresolved(void);
void markers_fork_child(void);
/* The hooks' architecture set up once (XSAVE size, capstone, the patching trap); false with
 * the reason when hooks cannot work in this process (discover needs it too: a followed frame
 * returns through the exit stub). */
bool markers_arch_ready(char *why, size_t why_len);
/* Would a marker on this function be hooked?  The marker layer's checks, without patching;
 * false with the reason it would be refused. */
bool markers_check_hookable(uintptr_t function, char *why, size_t why_len);

#endif
