/*
 * print_escaped.h — how the fuzz harnesses show the input that broke an invariant: as a C
 * string literal would, so a control byte or a NUL cannot hide.  Included by each harness.
 */
#ifndef ARENASHIM_FUZZ_PRINT_ESCAPED_H
#define ARENASHIM_FUZZ_PRINT_ESCAPED_H

#include <stddef.h>
#include <stdio.h>

static void print_escaped(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\\' || c == '\'')
            fprintf(stderr, "\\%c", c);
        else if (c >= 0x20 && c < 0x7f)
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
}

#endif
