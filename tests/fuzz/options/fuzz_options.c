/*
 * fuzz_options.c — libFuzzer harness for ARENASHIM_OPTIONS (core/options.c).
 *
 * Built by tests/fuzz/run.py with clang -fsanitize=fuzzer,address,undefined, linked with
 * core/options.c alone (it needs nothing else of the core).  The input is the variable's value
 * as getenv would give it: the bytes up to the first NUL.  Beyond "no crash, no sanitizer
 * report", every input is checked for:
 *
 *   - the error buffer: never written past error_len (a canary right behind it, for several
 *     lengths including 0 and 1), always NUL-terminated within error_len on failure, untouched
 *     on success; a shorter buffer gets a prefix of the longer one's message;
 *   - on failure: the message starts with "ARENASHIM_OPTIONS: " and is one line (no control
 *     characters, whatever the input holds);
 *   - on success: every field within its documented range (chunk_size a power of two in
 *     [64K, 1G], reserve in [64M, 64T] and at least 4 chunks, revoke_batch 0 or 2..65536,
 *     scan_threads <= 16, verbose <= 2, discover <= 2^30, quarantine_max > 0, enums and bools
 *     valid, exclude 1..16 non-empty names without ':', every string NUL-terminated within its
 *     array), and the text really is key=value[,key=value...] with known keys;
 *   - determinism: the same text parsed again gives a byte-identical struct, whatever the error
 *     buffer's length; idempotence: parsing it again over its own result changes nothing
 *     (every key assigns, nothing accumulates);
 *   - options_restrict_for_secure_execution: resets exactly the privileged keys, names each
 *     one once, keeps its output NUL-terminated within its length;
 *   - options_parse_size on the raw bytes: agrees with an independent model (digits, an
 *     optional K/M/G/T with optional i and B, no overflow).
 * A broken invariant prints what broke and aborts: libFuzzer keeps the input as a crash.
 */
#include "../print_escaped.h"
#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)
#define GIB ((size_t)1 << 30)
#define TIB ((size_t)1 << 40)
#define CANARY 0xa5
#define CANARY_LEN 64

static const char *current_text;



#define REQUIRE(condition, ...)                                                                 \
    do {                                                                                        \
        if (!(condition)) {                                                                     \
            fprintf(stderr, "fuzz_options: invariant broken: %s (%s:%d)\n  ", #condition,       \
                    __FILE__, __LINE__);                                                        \
            fprintf(stderr, __VA_ARGS__);                                                       \
            fprintf(stderr, "\n  input: '");                                                   \
            print_escaped(current_text ? current_text : "", current_text ? strlen(current_text) : 0); \
            fprintf(stderr, "'\n");                                                            \
            abort();                                                                            \
        }                                                                                       \
    } while (0)

/* The keys the parser knows, read once from its own "unknown key" message (so a key added to
 * options.c needs no change here), each checked to be a key it really accepts. */
static char known_text[1024];
static const char *known_keys[64];
static size_t known_count;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    struct options o;
    char error[1024];
    options_set_defaults(&o);
    if (options_parse(&o, "fuzz_no_such_key=1", error, sizeof error)) {
        fprintf(stderr, "fuzz_options: 'fuzz_no_such_key=1' was accepted\n");
        abort();
    }
    const char *list = strstr(error, "known keys: ");
    if (list == NULL) {
        fprintf(stderr, "fuzz_options: no key list in '%s'\n", error);
        abort();
    }
    snprintf(known_text, sizeof known_text, "%s", list + strlen("known keys: "));
    for (char *save = NULL, *key = strtok_r(known_text, ", ", &save); key && known_count < 64;
         key = strtok_r(NULL, ", ", &save)) {
        char text[128];
        snprintf(text, sizeof text, "%s=", key); /* no reader takes an empty value */
        options_set_defaults(&o);
        if (options_parse(&o, text, error, sizeof error) || strstr(error, "unknown key") != NULL) {
            fprintf(stderr, "fuzz_options: the key list in the unknown-key message names '%s', which "
                    "is not a key (cut short?): %s\n", key, error);
            abort();
        }
        known_keys[known_count++] = key;
    }
    if (known_count < 19) {
        fprintf(stderr, "fuzz_options: only %zu keys in the unknown-key message\n", known_count);
        abort();
    }
    return 0;
}

static bool is_known_key(const char *key, size_t len)
{
    for (size_t i = 0; i < known_count; i++)
        if (strlen(known_keys[i]) == len && memcmp(known_keys[i], key, len) == 0)
            return true;
    return false;
}

/* The text is "" or key=value[,key=value...] with known keys (values are the readers' job). */
static bool well_formed(const char *text)
{
    if (*text == '\0')
        return true;
    for (const char *pair = text;;) {
        const char *end = strchr(pair, ',');
        size_t len = end ? (size_t)(end - pair) : strlen(pair);
        const char *equals = memchr(pair, '=', len);
        if (equals == NULL || equals == pair || !is_known_key(pair, (size_t)(equals - pair)))
            return false;
        if (end == NULL)
            return true;
        pair = end + 1;
    }
}

static bool contains_key(const char *text, const char *key)
{
    size_t key_len = strlen(key);
    for (const char *pair = text; pair && *pair;) {
        if (strncmp(pair, key, key_len) == 0 && pair[key_len] == '=')
            return true;
        pair = strchr(pair, ',');
        if (pair)
            pair++;
    }
    return false;
}

static void require_bool(const bool *field, const char *name)
{
    unsigned char byte;
    memcpy(&byte, field, 1);
    REQUIRE(byte <= 1, "bool %s holds %u", name, byte);
}

static void require_string(const char *field, size_t size, const char *name)
{
    REQUIRE(memchr(field, '\0', size) != NULL, "%s is not NUL-terminated within its %zu bytes", name, size);
}

static void check_ranges(const struct options *o, const char *text)
{
    REQUIRE(o->chunk_size >= 64 * KIB && o->chunk_size <= GIB && (o->chunk_size & (o->chunk_size - 1)) == 0,
            "chunk_size=%zu", o->chunk_size);
    if (o->reserve_given)
        REQUIRE(o->reserve >= 64 * MIB && o->reserve <= 64 * TIB, "reserve=%zu", o->reserve);
    else
        REQUIRE(o->reserve == 256 * GIB, "reserve=%zu changed without reserve_given", o->reserve);
    REQUIRE(o->reserve_given == contains_key(text, "reserve"), "reserve_given=%d", o->reserve_given);
    REQUIRE(o->reserve >= 4 * o->chunk_size, "reserve=%zu < 4 * chunk_size=%zu", o->reserve, o->chunk_size);
    REQUIRE(o->on_dangling == ON_DANGLING_ABORT || o->on_dangling == ON_DANGLING_RECOVER,
            "on_dangling=%d", (int)o->on_dangling);
    REQUIRE(o->scan_mode == SCAN_MODE_AUTO || o->scan_mode == SCAN_MODE_STOP, "scan_mode=%d", (int)o->scan_mode);
    REQUIRE(o->revoke_batch == 0 || (o->revoke_batch >= 2 && o->revoke_batch <= 65536),
            "revoke_batch=%u", o->revoke_batch);
    REQUIRE(o->quarantine_max > 0, "quarantine_max=0");
    REQUIRE(o->quarantine_max_given == contains_key(text, "quarantine_max"), "quarantine_max_given=%d",
            o->quarantine_max_given);
    REQUIRE(o->scan_threads <= SCAN_THREADS_MAX, "scan_threads=%u", o->scan_threads);
    REQUIRE(o->verbose <= 2, "verbose=%u", o->verbose);
    REQUIRE(o->discover <= ((uint64_t)1 << 30), "discover=%llu", (unsigned long long)o->discover);
    require_bool(&o->reserve_given, "reserve_given");
    require_bool(&o->partial_reuse, "partial_reuse");
    require_bool(&o->kernel_features_off, "kernel_features_off");
    require_bool(&o->huge_pages, "huge_pages");
    require_bool(&o->quarantine_max_given, "quarantine_max_given");
    require_bool(&o->scan, "scan");
    require_bool(&o->stats, "stats");
    REQUIRE(o->exclude_count >= 1 && o->exclude_count <= OPTIONS_EXCLUDE_MAX, "exclude_count=%u", o->exclude_count);
    for (unsigned i = 0; i < OPTIONS_EXCLUDE_MAX; i++)
        require_string(o->exclude[i], sizeof o->exclude[i], "exclude[i]");
    for (unsigned i = 0; i < o->exclude_count; i++)
        REQUIRE(o->exclude[i][0] != '\0' && strchr(o->exclude[i], ':') == NULL, "exclude[%u]='%s'", i,
                o->exclude[i]);
    require_string(o->stats_json, sizeof o->stats_json, "stats_json");
    require_string(o->log_path, sizeof o->log_path, "log_path");
    require_string(o->discover_json, sizeof o->discover_json, "discover_json");
    REQUIRE(well_formed(text), "accepted, but not key=value[,key=value...] with known keys%s", "");
}

/* One parse over the defaults with an error buffer of error_len bytes followed by a canary. */
static bool parse_checked(const char *text, size_t error_len, struct options *out, char *message, size_t message_len)
{
    unsigned char *buffer = malloc(error_len + CANARY_LEN);
    memset(buffer, CANARY, error_len + CANARY_LEN);
    options_set_defaults(out);
    bool ok = options_parse(out, text, (char *)buffer, error_len);
    for (size_t i = 0; i < CANARY_LEN; i++)
        REQUIRE(buffer[error_len + i] == CANARY, "error buffer of %zu bytes written past its end (at +%zu)",
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

static void check_one_line(const char *message)
{
    REQUIRE(strncmp(message, "ARENASHIM_OPTIONS: ", 19) == 0, "error '%s' lacks the prefix", message);
    for (const unsigned char *c = (const unsigned char *)message; *c; c++)
        REQUIRE(*c >= 0x20 && *c != 0x7f, "error is not one line: byte 0x%02x in '%s'", *c, message);
}

static void check_restrict(const struct options *parsed)
{
    static const size_t lengths[] = { 128, 16, 1, 0 };
    struct options defaults;
    options_set_defaults(&defaults);
    for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
        size_t len = lengths[l];
        struct options o = *parsed;
        unsigned char *dropped = malloc(len + CANARY_LEN);
        memset(dropped, CANARY, len + CANARY_LEN);
        unsigned count = options_restrict_for_secure_execution(&o, (char *)dropped, len);
        for (size_t i = 0; i < CANARY_LEN; i++)
            REQUIRE(dropped[len + i] == CANARY, "dropped buffer of %zu written past its end", len);
        if (len > 0)
            REQUIRE(memchr(dropped, '\0', len) != NULL, "dropped not NUL-terminated within %zu", len);
        unsigned expected = (parsed->log_path[0] != '\0') + (parsed->stats_json[0] != '\0') +
                            (parsed->discover_json[0] != '\0') + (parsed->on_dangling != defaults.on_dangling) +
                            (parsed->partial_reuse != defaults.partial_reuse) +
                            (parsed->revoke_batch != defaults.revoke_batch);
        REQUIRE(count == expected, "restrict returned %u, expected %u", count, expected);
        if (len == 128) {
            unsigned names = dropped[0] ? 1 : 0;
            for (const char *p = (const char *)dropped; (p = strstr(p, ", ")) != NULL; p += 2)
                names++;
            REQUIRE(names == count, "dropped '%s' names %u keys, count %u", (char *)dropped, names, count);
        }
        REQUIRE(o.log_path[0] == '\0' && o.stats_json[0] == '\0' && o.discover_json[0] == '\0',
                "a path survived the restriction%s", "");
        REQUIRE(o.on_dangling == defaults.on_dangling && o.partial_reuse == defaults.partial_reuse &&
                o.revoke_batch == defaults.revoke_batch, "a weakening key survived the restriction%s", "");
        /* Everything else as parsed. */
        struct options expect = *parsed;
        expect.log_path[0] = expect.stats_json[0] = expect.discover_json[0] = '\0';
        expect.on_dangling = defaults.on_dangling;
        expect.partial_reuse = defaults.partial_reuse;
        expect.revoke_batch = defaults.revoke_batch;
        REQUIRE(memcmp(&o, &expect, sizeof o) == 0, "restriction changed another field%s", "");
        free(dropped);
    }
}

/* The model of options_parse_size: [0-9]+ ([kKmMgGtT] [iI]? [bB]?)?, value * unit fits. */
static bool model_parse_size(const char *text, size_t len, size_t *value)
{
    size_t i = 0;
    unsigned __int128 number = 0;
    while (i < len && text[i] >= '0' && text[i] <= '9') {
        number = number * 10 + (unsigned)(text[i] - '0');
        if (number > SIZE_MAX)
            return false;
        i++;
    }
    if (i == 0)
        return false;
    unsigned __int128 unit = 1;
    if (i < len) {
        const char *units = "kKmMgGtT";
        const char *u = memchr(units, text[i], 8);
        if (u == NULL || text[i] == '\0')
            return false;
        unit = (unsigned __int128)1 << (10 * (1 + (u - units) / 2));
        i++;
        if (i < len && (text[i] == 'i' || text[i] == 'I'))
            i++;
        if (i < len && (text[i] == 'b' || text[i] == 'B'))
            i++;
    }
    if (i != len || number * unit > SIZE_MAX)
        return false;
    *value = (size_t)(number * unit);
    return true;
}

static void check_parse_size(const uint8_t *data, size_t size)
{
    if (size > 64)
        return;
    char *text = malloc(size ? size : 1); /* exactly size bytes: ASan catches a read past len */
    memcpy(text, data, size);
    size_t value = 0xdeadbeef, model = 0xdeadbeef;
    bool ok = options_parse_size(text, size, &value);
    bool model_ok = model_parse_size(text, size, &model);
    REQUIRE(ok == model_ok, "options_parse_size says %d, the model %d (size %zu)", ok, model_ok, size);
    if (ok)
        REQUIRE(value == model, "options_parse_size gives %zu, the model %zu", value, model);
    else
        REQUIRE(value == 0xdeadbeef, "options_parse_size failed but wrote %zu", value);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0'; /* what getenv would give: up to the first NUL */
    current_text = text;

    struct options first, again;
    char message[2048], short_message[2048];
    bool ok = parse_checked(text, 1024, &first, message, sizeof message);
    if (ok) {
        check_ranges(&first, text);
        check_restrict(&first);
        /* Idempotent: the same text over its own result changes nothing. */
        struct options twice = first;
        char error[256];
        REQUIRE(options_parse(&twice, text, error, sizeof error), "the second parse over the result failed: %s",
                error);
        REQUIRE(memcmp(&twice, &first, sizeof twice) == 0, "parsing twice over the result changed it%s", "");
    } else {
        REQUIRE(message[0] != '\0', "failure with an empty message%s", "");
        check_one_line(message);
    }
    /* Deterministic, and independent of the error buffer's length. */
    const size_t lengths[] = { 1024, 1 + size % 97, 1, 0 };
    for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
        bool again_ok = parse_checked(text, lengths[l], &again, short_message, sizeof short_message);
        REQUIRE(again_ok == ok, "the result changed with error_len %zu", lengths[l]);
        REQUIRE(memcmp(&again, &first, sizeof again) == 0, "a second parse (error_len %zu) gave another struct",
                lengths[l]);
        if (!ok && lengths[l] > 0)
            REQUIRE(strncmp(short_message, message, strlen(short_message)) == 0 &&
                        strlen(short_message) == (strlen(message) < lengths[l] - 1 ? strlen(message) : lengths[l] - 1),
                    "error_len %zu gave '%s', not a prefix of '%s'", lengths[l], short_message, message);
    }
    check_parse_size((const uint8_t *)data, size);
    current_text = NULL;
    free(text);
    return 0;
}
