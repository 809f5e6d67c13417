/*
 * json.h — a strict little JSON parser for checking the statistics output.
 *
 * json_parse validates a whole document (RFC 8259 grammar: objects, arrays, strings with
 * escapes, numbers, true/false/null; nothing but whitespace after the value) and records
 * every scalar under its path: "regions_begun", "markers[0].spec".  Strings are recorded
 * decoded (ASCII and \u00XX only, which is all the statistics need).
 */
#ifndef ARENASHIM_TEST_JSON_H
#define ARENASHIM_TEST_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_VALUES 256
#define JSON_PATH_MAX 96
#define JSON_TEXT_MAX 512

enum json_kind { JSON_NUMBER = 'n', JSON_STRING = 's', JSON_TRUE = 't', JSON_FALSE = 'f',
                 JSON_NULL = 'z', JSON_ARRAY = 'a', JSON_OBJECT = 'o' };

struct json_value {
    char path[JSON_PATH_MAX];
    char kind;
    char text[JSON_TEXT_MAX]; /* number as written, or the decoded string */
    unsigned count;           /* elements of an array, members of an object */
};

struct json_doc {
    unsigned count;
    struct json_value values[JSON_MAX_VALUES];
    char error[128];
    const char *start;
};

static bool json_value_at(struct json_doc *doc, const char **s, const char *path, int depth);

static void json_ws(const char **s)
{
    while (**s == ' ' || **s == '\t' || **s == '\n' || **s == '\r')
        (*s)++;
}

static bool json_error(struct json_doc *doc, const char *s, const char *what)
{
    if (doc->error[0] == '\0')
        snprintf(doc->error, sizeof doc->error, "%s at offset %ld", what, (long)(s - doc->start));
    return false;
}

static struct json_value *json_record(struct json_doc *doc, const char *path, char kind)
{
    if (doc->count == JSON_MAX_VALUES)
        return NULL;
    struct json_value *v = &doc->values[doc->count++];
    snprintf(v->path, sizeof v->path, "%s", path);
    v->kind = kind;
    v->text[0] = '\0';
    v->count = 0;
    return v;
}

static int json_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Parses a string at *s into out (decoded, truncated to out_len). */
static bool json_string_at(struct json_doc *doc, const char **s, char *out, size_t out_len)
{
    const char *p = *s;
    size_t n = 0;
    if (*p != '"')
        return json_error(doc, p, "expected a string");
    p++;
    for (;;) {
        unsigned char c = (unsigned char)*p;
        int decoded;
        if (c == '\0')
            return json_error(doc, p, "unterminated string");
        if (c < 0x20)
            return json_error(doc, p, "control character in string");
        if (c == '"') {
            p++;
            break;
        }
        if (c == '\\') {
            p++;
            switch (*p) {
            case '"': decoded = '"'; break;
            case '\\': decoded = '\\'; break;
            case '/': decoded = '/'; break;
            case 'b': decoded = '\b'; break;
            case 'f': decoded = '\f'; break;
            case 'n': decoded = '\n'; break;
            case 'r': decoded = '\r'; break;
            case 't': decoded = '\t'; break;
            case 'u': {
                int v = 0;
                for (int i = 1; i <= 4; i++) {
                    int h = json_hex(p[i]);
                    if (h < 0)
                        return json_error(doc, p, "bad \\u escape");
                    v = v * 16 + h;
                }
                p += 4;
                decoded = v < 0x80 ? v : '?';
                break;
            }
            default:
                return json_error(doc, p, "bad escape");
            }
            p++;
        } else {
            decoded = c;
            p++;
        }
        if (n + 1 < out_len)
            out[n++] = (char)decoded;
    }
    if (out_len)
        out[n] = '\0';
    *s = p;
    return true;
}

static bool json_number_at(struct json_doc *doc, const char **s, char *out, size_t out_len)
{
    const char *p = *s, *start = *s;
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return json_error(doc, p, "bad number");
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9'))
            return json_error(doc, p, "bad fraction");
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return json_error(doc, p, "bad exponent");
        while (*p >= '0' && *p <= '9')
            p++;
    }
    size_t len = (size_t)(p - start);
    if (len >= out_len)
        len = out_len - 1;
    memcpy(out, start, len);
    out[len] = '\0';
    *s = p;
    return true;
}

static bool json_value_at(struct json_doc *doc, const char **s, const char *path, int depth)
{
    char child[JSON_PATH_MAX];
    json_ws(s);
    if (depth > 32)
        return json_error(doc, *s, "nested too deep");
    const char *p = *s;
    if (*p == '{') {
        struct json_value *v = json_record(doc, path, JSON_OBJECT);
        unsigned members = 0;
        (*s)++;
        json_ws(s);
        if (**s == '}') {
            (*s)++;
            return true;
        }
        for (;;) {
            char key[JSON_PATH_MAX];
            json_ws(s);
            if (!json_string_at(doc, s, key, sizeof key))
                return false;
            /* Duplicate keys are legal JSON but never what the stats mean to write. */
            size_t path_len = strlen(path), key_len = strlen(key);
            if (path_len + 1 + key_len >= sizeof child)
                return json_error(doc, *s, "path too long");
            memcpy(child, path, path_len);
            if (path_len)
                child[path_len++] = '.';
            memcpy(child + path_len, key, key_len + 1);
            for (unsigned i = 0; i < doc->count; i++)
                if (strcmp(doc->values[i].path, child) == 0)
                    return json_error(doc, *s, "duplicate key");
            json_ws(s);
            if (**s != ':')
                return json_error(doc, *s, "expected ':'");
            (*s)++;
            if (!json_value_at(doc, s, child, depth + 1))
                return false;
            members++;
            json_ws(s);
            if (**s == ',') {
                (*s)++;
                continue;
            }
            if (**s == '}') {
                (*s)++;
                break;
            }
            return json_error(doc, *s, "expected ',' or '}'");
        }
        if (v)
            v->count = members;
        return true;
    }
    if (*p == '[') {
        struct json_value *v = json_record(doc, path, JSON_ARRAY);
        unsigned elements = 0;
        (*s)++;
        json_ws(s);
        if (**s == ']') {
            (*s)++;
            return true;
        }
        for (;;) {
            if (strlen(path) + 12 >= sizeof child)
                return json_error(doc, *s, "path too long");
            snprintf(child, sizeof child, "%s[%u]", path, elements);
            if (!json_value_at(doc, s, child, depth + 1))
                return false;
            elements++;
            json_ws(s);
            if (**s == ',') {
                (*s)++;
                continue;
            }
            if (**s == ']') {
                (*s)++;
                break;
            }
            return json_error(doc, *s, "expected ',' or ']'");
        }
        if (v)
            v->count = elements;
        return true;
    }
    if (*p == '"') {
        char text[JSON_TEXT_MAX];
        if (!json_string_at(doc, s, text, sizeof text))
            return false;
        struct json_value *v = json_record(doc, path, JSON_STRING);
        if (v)
            snprintf(v->text, sizeof v->text, "%s", text);
        return true;
    }
    if (strncmp(p, "true", 4) == 0) {
        *s += 4;
        json_record(doc, path, JSON_TRUE);
        return true;
    }
    if (strncmp(p, "false", 5) == 0) {
        *s += 5;
        json_record(doc, path, JSON_FALSE);
        return true;
    }
    if (strncmp(p, "null", 4) == 0) {
        *s += 4;
        json_record(doc, path, JSON_NULL);
        return true;
    }
    if (*p == '-' || (*p >= '0' && *p <= '9')) {
        char text[64];
        if (!json_number_at(doc, s, text, sizeof text))
            return false;
        struct json_value *v = json_record(doc, path, JSON_NUMBER);
        if (v)
            snprintf(v->text, sizeof v->text, "%s", text);
        return true;
    }
    return json_error(doc, p, "expected a value");
}

__attribute__((unused)) static bool json_parse(struct json_doc *doc, const char *text)
{
    memset(doc, 0, sizeof *doc);
    doc->start = text;
    const char *s = text;
    if (!json_value_at(doc, &s, "", 0))
        return false;
    json_ws(&s);
    if (*s != '\0')
        return json_error(doc, s, "trailing characters");
    return true;
}

__attribute__((unused)) static const struct json_value *json_find(const struct json_doc *doc,
                                                                  const char *path)
{
    for (unsigned i = 0; i < doc->count; i++)
        if (strcmp(doc->values[i].path, path) == 0)
            return &doc->values[i];
    return NULL;
}

/* The value at path as an unsigned integer; false when absent or not a plain integer. */
__attribute__((unused)) static bool json_u64(const struct json_doc *doc, const char *path,
                                             uint64_t *out)
{
    const struct json_value *v = json_find(doc, path);
    if (v == NULL || v->kind != JSON_NUMBER || v->text[0] == '-' || strpbrk(v->text, ".eE"))
        return false;
    *out = strtoull(v->text, NULL, 10);
    return true;
}

#endif
