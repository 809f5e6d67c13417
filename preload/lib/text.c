/*
 * text.c — appending formatted text to a bounded buffer (see text.h).
 *
 * Layer: preload, lib.
 */
#include "text.h"

#include <stdarg.h>
#include <stdio.h>

void text_append(struct text *text, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    size_t room = text->used < text->len ? text->len - text->used : 0;
    int n = vsnprintf(room ? text->buf + text->used : NULL, room, format, args);
    va_end(args);
    if (n > 0)
        text->used += (size_t)n;
}

void text_json_string(struct text *text, const char *s)
{
    text_append(text, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            text_append(text, "\\%c", c);
        else if (c < 0x20)
            text_append(text, "\\u%04x", c);
        else
            text_append(text, "%c", c);
    }
    text_append(text, "\"");
}

size_t text_finish(struct text *text)
{
    if (text->len > 0)
        text->buf[text->used < text->len ? text->used : text->len - 1] = '\0';
    return text->used;
}
