/*
 * summary.h — escape sites and verdicts for the exit summary and the statistics JSON.
 */
#ifndef ARENASHIM_PRELOAD_SUMMARY_H
#define ARENASHIM_PRELOAD_SUMMARY_H

#include <stddef.h>

#include "shim.h"

/* Lines appended to the text summary (snprintf-like). */
size_t summary_format_text(char *buf, size_t len);
/* JSON members ("escape_sites": [...], "verdicts": [...]) without surrounding braces. */
size_t summary_format_json(char *buf, size_t len);

#endif
