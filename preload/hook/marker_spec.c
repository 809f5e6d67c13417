/*
 * marker_spec.c — the grammar of one ARENASHIM_REGIONS marker.
 *
 * Layer: preload, hook (below markers.c, which resolves and hooks what this parses).  Pure
 * text to record: no allocation, no global state, so it is unit-tested and fuzzed on its own
 * (tests/unit/preload/test_marker_spec.c, tests/fuzz).  The grammar:
 *
 *     FUNC            a C or mangled C++ symbol name: [A-Za-z_.$][A-Za-z0-9_.$]*
 *     MODULE:FUNC     MODULE non-empty, shorter than the record's field
 *     MODULE+0xOFF    OFF hexadecimal digits only (no sign, blank or second 0x), at most
 *                     64 bits; no ':' in the spec
 *
 * A spec is at most MARKER_SPEC_TEXT_MAX - 1 bytes, without a NUL.  Errors name the spec and the
 * expected form, on one line.  marker_spec_describe's text parses back to the same record.
 */
#include "marker_spec.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The error message, cut to error_len, always one line: the spec it quotes is the user's and
 * may hold any byte, so control characters become '?'.  Returns false. */
static bool refuse(char *error, size_t error_len, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(error, error_len, format, args);
    va_end(args);
    for (size_t i = 0; i < error_len && error[i] != '\0'; i++)
        if ((unsigned char)error[i] < 0x20 || error[i] == 0x7f)
            error[i] = '?';
    return false;
}

bool marker_spec_parse(const char *text, size_t len, struct marker_spec *spec, char *error, size_t error_len)
{
    char buffer[MARKER_SPEC_TEXT_MAX];
    if (len == 0 || len >= sizeof buffer || memchr(text, '\0', len) != NULL)
        return refuse(error, error_len, "ARENASHIM_REGIONS: empty or overlong marker in the list; "
                      "expected FUNC, MODULE:FUNC or MODULE+0xOFFSET separated by ','");
    memcpy(buffer, text, len);
    buffer[len] = '\0';
    memset(spec, 0, sizeof *spec);
    char *colon = strchr(buffer, ':');
    char *plus = strchr(buffer, '+');
    if (plus && !colon) {
        *plus = '\0';
        char *end = NULL;
        const char *number = plus + 1;
        if (buffer[0] == '\0' || strlen(buffer) >= sizeof spec->module ||
            strncmp(number, "0x", 2) != 0 || number[2] == '\0')
            return refuse(error, error_len, "ARENASHIM_REGIONS: marker '%.*s' is not MODULE+0xOFFSET "
                          "(e.g. main+0x1139, with the offset as nm prints it)", (int)len, text);
        /* Hexadecimal digits only: strtoull alone would also take blanks, a sign, a second
         * "0x", and turn an overflow into ULLONG_MAX. */
        errno = 0;
        unsigned long long value = strtoull(number + 2, &end, 16);
        if (*end != '\0' || strspn(number + 2, "0123456789abcdefABCDEF") != strlen(number + 2) ||
            errno == ERANGE)
            return refuse(error, error_len, "ARENASHIM_REGIONS: marker '%.*s': '%s' is not a hexadecimal "
                          "offset of at most 64 bits (e.g. main+0x1139)", (int)len, text, number);
        spec->form = SPEC_MODULE_OFFSET;
        strcpy(spec->module, buffer);
        spec->offset = (uintptr_t)value;
        return true;
    }
    const char *function = buffer;
    if (colon) {
        *colon = '\0';
        if (buffer[0] == '\0' || strlen(buffer) >= sizeof spec->module)
            return refuse(error, error_len, "ARENASHIM_REGIONS: marker '%.*s' has an empty or overlong "
                          "MODULE before ':' (e.g. main:handle_request)", (int)len, text);
        strcpy(spec->module, buffer);
        function = colon + 1;
        spec->form = SPEC_MODULE_FUNCTION;
    }
    /* A C or C++ (mangled) symbol name: identifier characters, '.', '$' and '@' (versions). */
    bool valid = function[0] != '\0' && !(function[0] >= '0' && function[0] <= '9');
    for (const char *c = function; *c && valid; c++)
        valid = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                *c == '_' || *c == '.' || *c == '$';
    if (valid && strlen(function) >= sizeof spec->function)
        return refuse(error, error_len, "ARENASHIM_REGIONS: marker '%.*s': the function name is longer "
                      "than %zu bytes", (int)len, text, sizeof spec->function - 1);
    if (!valid)
        return refuse(error, error_len, "ARENASHIM_REGIONS: marker '%.*s' does not name a function; "
                      "expected FUNC, MODULE:FUNC or MODULE+0xOFFSET (symbol names as nm prints them, "
                      "mangled for C++)", (int)len, text);
    strcpy(spec->function, function);
    return true;
}

void marker_spec_describe(char *out, size_t len, const struct marker_spec *spec)
{
    switch (spec->form) {
    case SPEC_FUNCTION: snprintf(out, len, "%s", spec->function); break;
    case SPEC_MODULE_FUNCTION: snprintf(out, len, "%s:%s", spec->module, spec->function); break;
    case SPEC_MODULE_OFFSET: snprintf(out, len, "%s+0x%lx", spec->module, (unsigned long)spec->offset); break;
    }
}
