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

/* The length of the well-formed UTF-8 sequence at s (1 to 4 bytes), or 0 when the bytes there
 * are not one (a stray continuation byte, a truncated, overlong or surrogate sequence, a code
 * point past U+10FFFF): Unicode's table of well-formed byte sequences. */
static size_t utf8_sequence_length(const unsigned char *s)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char low = 0x80, high = 0xbf; /* the second byte's range */
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        low = c == 0xe0 ? 0xa0 : 0x80;
        high = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        low = c == 0xf0 ? 0x90 : 0x80;
        high = c == 0xf4 ? 0x8f : 0xbf;
    } else
        return 0;
    if (s[1] < low || s[1] > high)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

void text_json_string(struct text *text, const char *s)
{
    /* JSON text is UTF-8 (RFC 8259): what is not (a command line's Latin-1 argument, a
     * file name) becomes U+FFFD, one per byte, or the whole document would not parse. */
    text_append(text, "\"");
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned char c = *p;
        size_t len = utf8_sequence_length(p);
        if (c == '"' || c == '\\')
            text_append(text, "\\%c", c);
        else if (c < 0x20)
            text_append(text, "\\u%04x", c);
        else if (len == 0)
            text_append(text, "\\ufffd");
        else
            text_append(text, "%.*s", (int)len, (const char *)p);
        p += len ? len : 1;
    }
    text_append(text, "\"");
}

size_t text_finish(struct text *text)
{
    if (text->len > 0)
        text->buf[text->used < text->len ? text->used : text->len - 1] = '\0';
    return text->used;
}
