/*
 * options.c — parsing and validating ARENASHIM_OPTIONS.
 *
 * Layer: core, no interposition and no allocation: it runs from the preload's constructor,
 * possibly before the C library has finished starting up.  Every key of the design brief is
 * known; an unknown key, a malformed pair or a value out of range is an error whose message
 * names the key and the accepted form.  Defaults are the ones measured in bench/ and
 * explained in docs/design.md.
 */
#include "options.h"
#include "core_arch.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)
#define GIB ((size_t)1 << 30)
#define TIB ((size_t)1 << 40)

void options_set_defaults(struct options *options)
{
    memset(options, 0, sizeof *options);
    options->chunk_size = 2 * MIB;
    options->reserve = 256 * GIB;
    options->on_dangling = ON_DANGLING_ABORT;
    options->partial_reuse = false;
    options->huge_pages = true;
    options->quarantine_max = 1 * GIB;
    options->scan = true;
    options->exclude_count = 2;
    strcpy(options->exclude[0], "libc.so.6");
    strcpy(options->exclude[1], ARCH_DYNAMIC_LOADER);
    options->trace_allocs = 0;
    options->verbose = 0;
}

bool options_parse_size(const char *text, size_t len, size_t *value)
{
    size_t i = 0, number = 0;
    if (len == 0)
        return false;
    for (; i < len && text[i] >= '0' && text[i] <= '9'; i++) {
        size_t digit = (size_t)(text[i] - '0');
        if (number > (SIZE_MAX - digit) / 10)
            return false;
        number = number * 10 + digit;
    }
    if (i == 0)
        return false;
    size_t unit = 1;
    if (i < len) {
        switch (text[i]) {
        case 'k': case 'K': unit = KIB; break;
        case 'm': case 'M': unit = MIB; break;
        case 'g': case 'G': unit = GIB; break;
        case 't': case 'T': unit = TIB; break;
        default: return false;
        }
        i++;
        /* Accept "4M", "4MB" and "4MiB" alike. */
        if (i < len && (text[i] == 'i' || text[i] == 'I'))
            i++;
        if (i < len && (text[i] == 'b' || text[i] == 'B'))
            i++;
    }
    if (i != len)
        return false;
    if (number != 0 && unit > SIZE_MAX / number)
        return false;
    *value = number * unit;
    return true;
}

/* The message, cut to error_len, always one line: it quotes the user's text, which may hold
 * any byte, so control characters (a newline that would forge a line of output) become '?'. */
static bool fail(char *error, size_t error_len, const char *format, ...)
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

static bool value_is(const char *value, size_t len, const char *word)
{
    return strlen(word) == len && memcmp(value, word, len) == 0;
}

static bool parse_bool(const char *value, size_t len, bool *out)
{
    if (value_is(value, len, "1") || value_is(value, len, "on") || value_is(value, len, "true")) {
        *out = true;
        return true;
    }
    if (value_is(value, len, "0") || value_is(value, len, "off") || value_is(value, len, "false")) {
        *out = false;
        return true;
    }
    return false;
}

static bool parse_unsigned(const char *value, size_t len, uint64_t *out)
{
    uint64_t number = 0;
    if (len == 0 || len > 19)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (value[i] < '0' || value[i] > '9')
            return false;
        number = number * 10 + (uint64_t)(value[i] - '0');
    }
    *out = number;
    return true;
}

static bool copy_path(char *dest, const char *value, size_t len)
{
    if (len == 0 || len >= OPTIONS_PATH_MAX || memchr(value, '\0', len))
        return false;
    memcpy(dest, value, len);
    dest[len] = '\0';
    return true;
}

static bool parse_exclude(struct options *options, const char *value, size_t len)
{
    unsigned count = 0;
    size_t start = 0;
    if (len == 0)
        return false;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && value[i] != ':')
            continue;
        size_t name_len = i - start;
        if (name_len == 0 || name_len >= OPTIONS_MODULE_NAME_MAX || count == OPTIONS_EXCLUDE_MAX)
            return false;
        memcpy(options->exclude[count], value + start, name_len);
        options->exclude[count][name_len] = '\0';
        count++;
        start = i + 1;
    }
    options->exclude_count = count;
    return true;
}

static bool is_power_of_two(size_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

/* Each key: how its value is read into the options, and the accepted form the error names.
 * A reader returns false for a value it does not accept. */
struct option_key {
    const char *name;
    bool (*read)(struct options *options, const char *value, size_t len);
    const char *expected;
};

static bool read_chunk_size(struct options *options, const char *value, size_t len)
{
    size_t size;
    if (!options_parse_size(value, len, &size) || !is_power_of_two(size) || size < 64 * KIB || size > 1 * GIB)
        return false;
    options->chunk_size = size;
    return true;
}

static bool read_reserve(struct options *options, const char *value, size_t len)
{
    size_t size;
    if (!options_parse_size(value, len, &size) || size < 64 * MIB || size > 64 * TIB)
        return false;
    options->reserve = size;
    options->reserve_given = true;
    return true;
}

static bool read_on_dangling(struct options *options, const char *value, size_t len)
{
    if (value_is(value, len, "abort"))
        options->on_dangling = ON_DANGLING_ABORT;
    else if (value_is(value, len, "recover"))
        options->on_dangling = ON_DANGLING_RECOVER;
    else
        return false;
    return true;
}

static bool read_on_bad_marker(struct options *options, const char *value, size_t len)
{
    if (value_is(value, len, "exit"))
        options->bad_markers_warn = false;
    else if (value_is(value, len, "warn"))
        options->bad_markers_warn = true;
    else
        return false;
    return true;
}

static bool read_partial_reuse(struct options *options, const char *value, size_t len)
{
    return parse_bool(value, len, &options->partial_reuse);
}

static bool read_revoke_batch(struct options *options, const char *value, size_t len)
{
    uint64_t number;
    if (!parse_unsigned(value, len, &number) || number == 1 || number > 65536)
        return false;
    options->revoke_batch = (unsigned)number;
    return true;
}

static bool read_huge_pages(struct options *options, const char *value, size_t len)
{
    return parse_bool(value, len, &options->huge_pages);
}

static bool read_kernel_features(struct options *options, const char *value, size_t len)
{
    if (value_is(value, len, "auto"))
        options->kernel_features_off = false;
    else if (value_is(value, len, "none"))
        options->kernel_features_off = true;
    else
        return false;
    return true;
}

static bool read_quarantine_max(struct options *options, const char *value, size_t len)
{
    size_t size;
    if (!options_parse_size(value, len, &size) || size == 0)
        return false;
    options->quarantine_max = size;
    options->quarantine_max_given = true;
    return true;
}

static bool read_scan_mode(struct options *options, const char *value, size_t len)
{
    if (value_is(value, len, "auto"))
        options->scan_mode = SCAN_MODE_AUTO;
    else if (value_is(value, len, "stop"))
        options->scan_mode = SCAN_MODE_STOP;
    else
        return false;
    return true;
}

static bool read_scan_threads(struct options *options, const char *value, size_t len)
{
    uint64_t number;
    if (!parse_unsigned(value, len, &number) || number > SCAN_THREADS_MAX)
        return false;
    options->scan_threads = (unsigned)number;
    return true;
}

static bool read_scan(struct options *options, const char *value, size_t len)
{
    return parse_bool(value, len, &options->scan);
}

static bool read_exclude(struct options *options, const char *value, size_t len)
{
    return parse_exclude(options, value, len);
}

static bool read_stats(struct options *options, const char *value, size_t len)
{
    return parse_bool(value, len, &options->stats);
}

static bool read_stats_json(struct options *options, const char *value, size_t len)
{
    return copy_path(options->stats_json, value, len);
}

static bool read_log_path(struct options *options, const char *value, size_t len)
{
    return copy_path(options->log_path, value, len);
}

static bool read_discover(struct options *options, const char *value, size_t len)
{
    return parse_unsigned(value, len, &options->discover) && options->discover <= ((uint64_t)1 << 30);
}

static bool read_discover_json(struct options *options, const char *value, size_t len)
{
    return copy_path(options->discover_json, value, len);
}

static bool read_trace_allocs(struct options *options, const char *value, size_t len)
{
    return parse_unsigned(value, len, &options->trace_allocs);
}

static bool read_verbose(struct options *options, const char *value, size_t len)
{
    uint64_t number;
    if (!parse_unsigned(value, len, &number) || number > 2)
        return false;
    options->verbose = (unsigned)number;
    return true;
}

#define STRINGIFY_VALUE(x) #x
#define STRINGIFY(x) STRINGIFY_VALUE(x)

static const struct option_key option_keys[] = {
    { "chunk_size", read_chunk_size, "a power of two from 64K to 1G, e.g. chunk_size=1M" },
    { "reserve", read_reserve, "a size from 64M to 64T, e.g. reserve=256G" },
    { "on_dangling", read_on_dangling, "'abort' or 'recover'" },
    { "on_bad_marker", read_on_bad_marker, "'exit' or 'warn'" },
    { "partial_reuse", read_partial_reuse, "0 or 1" },
    { "revoke_batch", read_revoke_batch, "0 (off: strict) or a count of region ends from 2 to 65536, "
                                         "e.g. revoke_batch=32" },
    { "huge_pages", read_huge_pages, "0 or 1" },
    { "kernel_features", read_kernel_features, "'auto' (what the kernel offers) or 'none' (the "
                                               "fallbacks of an old kernel)" },
    { "quarantine_max", read_quarantine_max, "a non-zero size, e.g. quarantine_max=1G" },
    { "scan", read_scan, "'on' or 'off'" },
    { "scan_mode", read_scan_mode, "'auto' (mostly concurrent where the kernel can track writes) or "
                                   "'stop' (the world stopped for the whole scan)" },
    { "scan_threads", read_scan_threads, "0 (the online CPUs) or a count of marking threads from 1 to "
                                         STRINGIFY(SCAN_THREADS_MAX) },
    { "exclude", read_exclude, "up to " STRINGIFY(OPTIONS_EXCLUDE_MAX) " module file names separated by ':', "
                               "e.g. exclude=libc.so.6:libfoo.so" },
    { "stats", read_stats, "0 or 1" },
    { "stats_json", read_stats_json, "a file path ('%p' stands for the process id)" },
    { "log_path", read_log_path, "a file path ('%p' stands for the process id)" },
    { "trace_allocs", read_trace_allocs, "0 (off), 1 (every allocation) or N (one in N)" },
    { "discover", read_discover, "0 (off), 1 (every heap allocation) or N (one in N, up to 2^30)" },
    { "discover_json", read_discover_json, "a file path ('%p' stands for the process id)" },
    { "verbose", read_verbose, "0, 1 or 2" },
};

static bool apply_pair(struct options *options, const char *key, size_t key_len, const char *value,
                       size_t value_len, char *error, size_t error_len)
{
    size_t count = sizeof option_keys / sizeof option_keys[0];
    for (size_t i = 0; i < count; i++) {
        const struct option_key *option = &option_keys[i];
        if (!value_is(key, key_len, option->name))
            continue;
        if (option->read(options, value, value_len))
            return true;
        return fail(error, error_len, "ARENASHIM_OPTIONS: %s=%.*s: expected %s", option->name,
                    (int)value_len, value, option->expected);
    }
    char known[256];
    size_t used = 0;
    for (size_t i = 0; i < count && used < sizeof known; i++) {
        int n = snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "", option_keys[i].name);
        used += n > 0 ? (size_t)n : 0;
    }
    return fail(error, error_len, "ARENASHIM_OPTIONS: unknown key '%.*s'; known keys: %s", (int)key_len,
                key, known);
}

unsigned options_restrict_for_secure_execution(struct options *options, char *dropped, size_t len)
{
    struct options defaults;
    options_set_defaults(&defaults);
    const char *names[6];
    unsigned count = 0;
    if (options->log_path[0] != '\0') {
        options->log_path[0] = '\0';
        names[count++] = "log_path";
    }
    if (options->stats_json[0] != '\0') {
        options->stats_json[0] = '\0';
        names[count++] = "stats_json";
    }
    if (options->discover_json[0] != '\0') {
        options->discover_json[0] = '\0';
        names[count++] = "discover_json";
    }
    if (options->on_dangling != defaults.on_dangling) {
        options->on_dangling = defaults.on_dangling;
        names[count++] = "on_dangling";
    }
    if (options->partial_reuse != defaults.partial_reuse) {
        options->partial_reuse = defaults.partial_reuse;
        names[count++] = "partial_reuse";
    }
    if (options->revoke_batch != defaults.revoke_batch) {
        options->revoke_batch = defaults.revoke_batch;
        names[count++] = "revoke_batch";
    }
    size_t used = 0;
    if (len > 0)
        dropped[0] = '\0';
    for (unsigned i = 0; i < count && used < len; i++) {
        int n = snprintf(dropped + used, len - used, "%s%s", i ? ", " : "", names[i]);
        used += n > 0 ? (size_t)n : 0;
    }
    return count;
}

bool options_parse(struct options *options, const char *text, char *error, size_t error_len)
{
    if (text == NULL)
        return true;
    const char *pair = text;
    while (*pair != '\0') {
        const char *end = strchr(pair, ',');
        size_t pair_len = end ? (size_t)(end - pair) : strlen(pair);
        const char *equals = memchr(pair, '=', pair_len);
        if (pair_len == 0)
            return fail(error, error_len,
                        "ARENASHIM_OPTIONS: empty entry in '%s'; expected key=value[,key=value...]", text);
        if (equals == NULL || equals == pair)
            return fail(error, error_len,
                        "ARENASHIM_OPTIONS: '%.*s' is not key=value; expected key=value[,key=value...]",
                        (int)pair_len, pair);
        size_t key_len = (size_t)(equals - pair);
        if (!apply_pair(options, pair, key_len, equals + 1, pair_len - key_len - 1, error, error_len))
            return false;
        if (end == NULL)
            break;
        pair = end + 1;
        if (*pair == '\0')
            return fail(error, error_len,
                        "ARENASHIM_OPTIONS: trailing ',' in '%s'; expected key=value[,key=value...]", text);
    }
    if (options->reserve < 4 * options->chunk_size)
        return fail(error, error_len,
                    "ARENASHIM_OPTIONS: reserve=%zu is smaller than 4 chunks of chunk_size=%zu; "
                    "raise reserve or lower chunk_size", options->reserve, options->chunk_size);
    return true;
}
