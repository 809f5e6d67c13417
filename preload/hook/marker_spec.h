/*
 * marker_spec.h — one ARENASHIM_REGIONS marker as text and as a record (marker_spec.c).
 */
#ifndef ARENASHIM_MARKER_SPEC_H
#define ARENASHIM_MARKER_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MARKER_SPEC_TEXT_MAX 400

enum spec_form { SPEC_FUNCTION, SPEC_MODULE_FUNCTION, SPEC_MODULE_OFFSET };

struct marker_spec {
    enum spec_form form;
    char module[128];
    char function[256];
    uintptr_t offset;
    bool done; /* hooked, or refused: never looked at again (markers.c) */
};

/* Parses text[0, len) (not NUL-terminated) into spec; false with a message in error (always
 * NUL-terminated, cut to error_len) when it is not one of the three forms. */
bool marker_spec_parse(const char *text, size_t len, struct marker_spec *spec, char *error, size_t error_len);

/* The spec as the user would write it, for messages and the statistics. */
void marker_spec_describe(char *out, size_t len, const struct marker_spec *spec);

#endif
