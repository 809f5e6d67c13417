/*
 * text.h — snprintf-like building of statistics text and JSON into a caller's buffer.
 *
 * Layer: preload, lib.  Appends keep counting past the end of the buffer, so a caller learns the
 * length the whole text needs (the snprintf contract of arenashim_stats_json).  No malloc.
 */
#ifndef ARENASHIM_PRELOAD_LIB_TEXT_H
#define ARENASHIM_PRELOAD_LIB_TEXT_H

#include <stddef.h>

struct text {
    char *buf;
    size_t len;
    size_t used;
};

__attribute__((format(printf, 2, 3))) void text_append(struct text *text, const char *format, ...);
/* s as a JSON string literal, quotes included; bytes that are not UTF-8 become U+FFFD. */
void text_json_string(struct text *text, const char *s);
/* NUL-terminates what fits; returns the length the whole text needs. */
size_t text_finish(struct text *text);

#endif
