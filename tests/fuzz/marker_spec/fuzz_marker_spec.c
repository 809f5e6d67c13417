/*
 * fuzz_marker_spec.c — libFuzzer harness for the ARENASHIM_REGIONS grammar
 * (preload/hook/marker_spec.c).
 *
 * Built by tests/fuzz/run.py with clang -fsanitize=fuzzer,address,undefined, linked with
 * preload/hook/marker_spec.c alone (pure functions, no global state).  Each input is used twice:
 *
 *   1. whole, as one spec: marker_spec_parse(data, size) on a copy of exactly size bytes (so
 *      ASan catches a read past len); the bytes may hold anything, NUL included;
 *   2. as the value of ARENASHIM_REGIONS: up to the first NUL, split on ',' the way
 *      preload/hook/markers.c parse_all does, each piece parsed with its 600-byte error buffer
 *      and described into the marker table's 400-byte field.
 *
 * Beyond "no crash, no sanitizer report", every parse is checked for:
 *
 *   - the error buffer: never written past error_len (a canary behind it, for several lengths
 *     including 0 and 1), NUL-terminated within error_len on failure, untouched on success;
 *     on failure the message starts with "ARENASHIM_REGIONS:" and is one line (no control
 *     characters, whatever the spec holds);
 *   - agreement with an independent model of the documented grammar (marker_spec.c's header):
 *         FUNC          [A-Za-z_.$][A-Za-z0-9_.$]*, shorter than 256 bytes
 *         MODULE:FUNC   MODULE non-empty, shorter than 128 bytes, up to the first ':'
 *         MODULE+0xOFF  no ':' at all; MODULE up to the first '+', non-empty, shorter than 128;
 *                       OFF one or more hexadecimal digits whose value fits in 64 bits
 *     and the whole spec 1..399 bytes without a NUL: the parser accepts exactly what the model
 *     accepts, with the same form, module, function and offset;
 *   - on success: module and function NUL-terminated within their arrays, done false, and the
 *     record independent of what the struct held before (parsed over 0x00 and over 0xa5 bytes:
 *     byte-identical);
 *   - round trip: marker_spec_describe's text parses back to the identical record, fits the
 *     marker table's 400-byte field, and a shorter output buffer gets a NUL-terminated prefix
 *     without being overrun;
 *   - list round trip: the descriptions of all pieces joined by ',' split and parse back to the
 *     same records.
 * A broken invariant prints what broke and aborts: libFuzzer keeps the input as a crash.
 */
#include "../print_escaped.h"
#include "marker_spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CANARY 0xa5
#define CANARY_LEN 64
#define ENTRY_SPEC_LEN 400 /* struct marker_entry's spec (preload/report/marker_table.h) */
#define PARSE_ALL_ERROR_LEN 600 /* markers.c parse_all */
#define MAX_LIST 300

static const char *current_text;
static size_t current_len;



#define REQUIRE(condition, ...)                                                                 \
    do {                                                                                        \
        if (!(condition)) {                                                                     \
            fprintf(stderr, "fuzz_marker_spec: invariant broken: %s (%s:%d)\n  ", #condition,   \
                    __FILE__, __LINE__);                                                        \
            fprintf(stderr, __VA_ARGS__);                                                       \
            fprintf(stderr, "\n  spec: '");                                                    \
            print_escaped(current_text ? current_text : "", current_len);                       \
            fprintf(stderr, "' (%zu bytes)\n", current_len);                                   \
            abort();                                                                            \
        }                                                                                       \
    } while (0)

/* ---- the model of the grammar ------------------------------------------------------------ */

struct model {
    enum spec_form form;
    char module[128];
    char function[256];
    unsigned long long offset;
};

static bool is_function_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '.' || c == '$' ||
           (!first && c >= '0' && c <= '9');
}

static bool model_function(const char *text, size_t len, struct model *m)
{
    if (len == 0 || len >= sizeof m->function)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_function_char(text[i], i == 0))
            return false;
    memcpy(m->function, text, len);
    m->function[len] = '\0';
    return true;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool model_parse(const char *text, size_t len, struct model *m)
{
    memset(m, 0, sizeof *m);
    if (len == 0 || len >= MARKER_SPEC_TEXT_MAX || memchr(text, '\0', len))
        return false;
    const char *colon = memchr(text, ':', len);
    const char *plus = memchr(text, '+', len);
    if (colon) {
        size_t module_len = (size_t)(colon - text);
        if (module_len == 0 || module_len >= sizeof m->module)
            return false;
        memcpy(m->module, text, module_len);
        m->form = SPEC_MODULE_FUNCTION;
        return model_function(colon + 1, len - module_len - 1, m);
    }
    if (plus) {
        size_t module_len = (size_t)(plus - text);
        const char *number = plus + 1;
        size_t number_len = len - module_len - 1;
        if (module_len == 0 || module_len >= sizeof m->module || number_len < 3 || number[0] != '0' ||
            number[1] != 'x')
            return false;
        unsigned long long value = 0;
        for (size_t i = 2; i < number_len; i++) {
            int digit = hex_digit(number[i]);
            if (digit < 0 || value > (~0ULL >> 4))
                return false;
            value = value << 4 | (unsigned)digit;
        }
        memcpy(m->module, text, module_len);
        m->form = SPEC_MODULE_OFFSET;
        m->offset = value;
        return true;
    }
    m->form = SPEC_FUNCTION;
    return model_function(text, len, m);
}

/* ---- the checks --------------------------------------------------------------------------- */

static void check_one_line(const char *message)
{
    REQUIRE(strncmp(message, "ARENASHIM_REGIONS:", 18) == 0, "error '%s' lacks the prefix", message);
    for (const unsigned char *c = (const unsigned char *)message; *c; c++)
        REQUIRE(*c >= 0x20 && *c != 0x7f, "error is not one line: byte 0x%02x in '%s'", *c, message);
}

/* marker_spec_parse with an error buffer of error_len bytes followed by a canary, over a struct
 * filled with fill. */
static bool parse_checked(const char *text, size_t len, struct marker_spec *spec, int fill, size_t error_len,
                          char *message, size_t message_len)
{
    unsigned char *buffer = malloc(error_len + CANARY_LEN);
    memset(buffer, CANARY, error_len + CANARY_LEN);
    memset(spec, fill, sizeof *spec);
    bool ok = marker_spec_parse(text, len, spec, (char *)buffer, error_len);
    for (size_t i = 0; i < CANARY_LEN; i++)
        REQUIRE(buffer[error_len + i] == CANARY, "error buffer of %zu bytes written past its end (+%zu)",
                error_len, i);
    if (ok) {
        for (size_t i = 0; i < error_len; i++)
            REQUIRE(buffer[i] == CANARY, "success, yet the error buffer was written (byte %zu)", i);
    } else if (error_len > 0) {
        REQUIRE(memchr(buffer, '\0', error_len) != NULL, "error not NUL-terminated within %zu bytes", error_len);
    }
    if (message_len > 0) {
        if (!ok && error_len > 0)
            snprintf(message, message_len, "%s", (char *)buffer);
        else
            message[0] = '\0';
    }
    free(buffer);
    return ok;
}

static void describe_checked(const struct marker_spec *spec, char *full, size_t full_len)
{
    unsigned char big[1024 + CANARY_LEN];
    memset(big, CANARY, sizeof big);
    marker_spec_describe((char *)big, 1024, spec);
    REQUIRE(memchr(big, '\0', 1024) != NULL, "description not NUL-terminated%s", "");
    for (size_t i = 1024; i < sizeof big; i++)
        REQUIRE(big[i] == CANARY, "describe wrote past 1024 bytes%s", "");
    size_t len = strlen((char *)big);
    REQUIRE(len < ENTRY_SPEC_LEN, "description of %zu bytes does not fit the marker table's %d", len,
            ENTRY_SPEC_LEN);
    REQUIRE(len < full_len, "description too long%s", "");
    memcpy(full, big, len + 1);
    static const size_t lengths[] = { 0, 1, 5, 64 };
    for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
        size_t n = lengths[l];
        unsigned char *small = malloc(n + CANARY_LEN);
        memset(small, CANARY, n + CANARY_LEN);
        marker_spec_describe((char *)small, n, spec);
        for (size_t i = 0; i < CANARY_LEN; i++)
            REQUIRE(small[n + i] == CANARY, "describe into %zu bytes wrote past them", n);
        if (n > 0) {
            size_t expect = len < n - 1 ? len : n - 1;
            REQUIRE(strlen((char *)small) == expect && memcmp(small, full, expect) == 0,
                    "describe into %zu bytes gave '%s', not a prefix of '%s'", n, (char *)small, full);
        }
        free(small);
    }
}

/* Everything about one spec; returns whether it parsed (the record in *out). */
static bool check_spec(const char *text, size_t len, size_t error_len, struct marker_spec *out)
{
    const char *saved_text = current_text;
    size_t saved_len = current_len;
    current_text = text;
    current_len = len;

    /* Exactly len bytes: a read past them is an ASan report. */
    char *copy = malloc(len ? len : 1);
    memcpy(copy, text, len);
    char message[1024], other[1024];
    struct marker_spec spec, again;
    bool ok = parse_checked(copy, len, &spec, 0, error_len, message, sizeof message);

    struct model m;
    bool model_ok = model_parse(text, len, &m);
    REQUIRE(ok == model_ok, "the parser says %s, the grammar %s: %s", ok ? "valid" : "invalid",
            model_ok ? "valid" : "invalid", ok ? "(no error)" : message);

    /* Deterministic, independent of the struct's old bytes and of the error buffer's length. */
    const size_t lengths[] = { error_len, 1 + len % 89, 1, 0 };
    for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
        bool again_ok = parse_checked(copy, len, &again, l % 2 ? 0 : CANARY, lengths[l], other, sizeof other);
        REQUIRE(again_ok == ok, "result changed with error_len %zu", lengths[l]);
        if (ok)
            REQUIRE(memcmp(&again, &spec, sizeof spec) == 0, "another record on a second parse (old bytes 0x%02x)",
                    l % 2 ? 0 : CANARY);
        else if (lengths[l] > 0 && error_len > 0)
            REQUIRE(strlen(other) == (strlen(message) < lengths[l] - 1 ? strlen(message) : lengths[l] - 1) &&
                        strncmp(other, message, strlen(other)) == 0,
                    "error_len %zu gave '%s', not a prefix of '%s'", lengths[l], other, message);
    }
    if (!ok) {
        if (error_len > 0) {
            REQUIRE(message[0] != '\0', "failure with an empty message%s", "");
            check_one_line(message);
        }
    } else {
        REQUIRE(spec.form == m.form, "form %d, the grammar says %d", (int)spec.form, (int)m.form);
        REQUIRE(memchr(spec.module, '\0', sizeof spec.module) != NULL, "module not NUL-terminated%s", "");
        REQUIRE(memchr(spec.function, '\0', sizeof spec.function) != NULL, "function not NUL-terminated%s", "");
        REQUIRE(strcmp(spec.module, m.module) == 0, "module '%s', the grammar says '%s'", spec.module, m.module);
        REQUIRE(strcmp(spec.function, m.function) == 0, "function '%s', the grammar says '%s'", spec.function,
                m.function);
        REQUIRE(spec.offset == m.offset, "offset %#llx, the grammar says %#llx", (unsigned long long)spec.offset,
                m.offset);
        REQUIRE(!spec.done, "done set by the parser%s", "");

        /* Round trip through the description. */
        char described[1024];
        describe_checked(&spec, described, sizeof described);
        char reparse_error[PARSE_ALL_ERROR_LEN];
        bool back = marker_spec_parse(described, strlen(described), &again, reparse_error, sizeof reparse_error);
        REQUIRE(back, "the description '%s' does not parse back: %s", described, reparse_error);
        REQUIRE(memcmp(&again, &spec, sizeof spec) == 0, "the description '%s' parses to another record",
                described);
        if (out)
            *out = spec;
    }
    free(copy);
    current_text = saved_text;
    current_len = saved_len;
    return ok;
}

/* ARENASHIM_REGIONS: the C string split on ',' like markers.c parse_all. */
static void check_list(const char *text)
{
    static struct marker_spec specs[MAX_LIST];
    unsigned count = 0;
    bool all_ok = true;
    for (const char *p = text;; count++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (count >= MAX_LIST)
            return;
        if (!check_spec(p, len, PARSE_ALL_ERROR_LEN, &specs[count])) {
            all_ok = false;
            break; /* parse_all stops at the first bad marker */
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    if (!all_ok)
        return;
    count++;
    /* The descriptions joined by ',' give the same list. */
    static char joined[MAX_LIST * ENTRY_SPEC_LEN];
    size_t used = 0;
    for (unsigned i = 0; i < count; i++) {
        char one[1024];
        marker_spec_describe(one, sizeof one, &specs[i]);
        used += (size_t)snprintf(joined + used, sizeof joined - used, "%s%s", i ? "," : "", one);
    }
    unsigned index = 0;
    for (const char *p = joined;; index++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        struct marker_spec spec;
        char error[PARSE_ALL_ERROR_LEN];
        REQUIRE(index < count, "the joined descriptions '%s' hold more markers than %u", joined, count);
        REQUIRE(marker_spec_parse(p, len, &spec, error, sizeof error), "joined descriptions: %s", error);
        REQUIRE(memcmp(&spec, &specs[index], sizeof spec) == 0, "joined descriptions: marker %u differs", index);
        if (!comma)
            break;
        p = comma + 1;
    }
    REQUIRE(index + 1 == count, "the joined descriptions hold %u markers, not %u", index + 1, count);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_spec((const char *)data, size, 1024, NULL);
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    current_text = text;
    current_len = strlen(text);
    check_list(text);
    current_text = NULL;
    current_len = 0;
    free(text);
    return 0;
}
