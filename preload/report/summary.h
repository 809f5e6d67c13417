/*
 * summary.h — escape sites and verdicts for the exit summary and the statistics JSON.
 */
#ifndef ARENASHIM_PRELOAD_SUMMARY_H
#define ARENASHIM_PRELOAD_SUMMARY_H

#include "text.h"

/* Lines of the text summary: escape sites, then a verdict per marker. */
void summary_append_text(struct text *out);
/* JSON members "escape_sites": [...], "verdicts": [...] (no surrounding braces). */
void summary_append_json(struct text *out);
/* JSON members "alloc_sites": [...] (the traced allocation sites, up to 256: those with escapes
 * first, then by allocations), "alloc_sites_total" (all of them) and
 * "alloc_sites_omitted_allocations" (the traced allocations of those left out). */
void summary_append_alloc_sites_json(struct text *out);

#endif
