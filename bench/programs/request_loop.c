/*
 * request_loop.c — an ordinary C program that simulates a server's request loop; the demo
 * (scripts/arenashim with no command) and a whole-program benchmark of arenashim.  It knows
 * nothing about arenashim: regions come from a function marker, e.g.
 *
 *     scripts/arenashim --region handle_request -- request_loop
 *
 * which opens a region around every call of handle_request().
 *
 *     request_loop [N] [--leak] [--dangle] [--access-log FILE] [--quiet]
 *
 * For each of N requests (default 20000) it makes a synthetic HTTP-like request string,
 * then handle_request() parses it into a small tree of heap objects (path segments, query
 * parameters, headers, cookies, a body of items with attributes: a few hundred small
 * mallocs, about 10-20 KiB), renders a JSON-ish response into a growing buffer, takes a
 * checksum of it and frees the tree.  The checksum of all responses is printed at the end:
 * the same with any allocator.
 *
 *   --leak    the PUT handler forgets to free the request's cookie list, as real handlers
 *             leak on some path: plain, the heap grows; in regions the leak is reclaimed.
 *   --dangle  the handler keeps a pointer to the request's User-Agent string and writes it
 *             to the access log while handling the next request: a use-after-free.  Plain,
 *             it silently reads freed memory (the log gets garbage, the checksum is not
 *             affected); with arenashim, the dangling read is reported.
 *   --access-log FILE   where --dangle's log lines go (default /dev/null).
 *   --quiet   print only the checksum line.
 *
 * Build: gcc -O2 bench/programs/request_loop.c -o request_loop
 * handle_request() and the other functions a marker may name are noinline (as large handlers
 * in real programs are), so each call from the loop is a real call that a marker can hook.
 */
#include <stdarg.h>
#include <stdbool.h>

/* rng, the text buffer, die, fnv1a: the same helpers the benchmark workloads use. */
#include "../workloads/common.h"

/* ---- the "network": request strings, made outside any region ---------------------------- */

__attribute__((format(printf, 2, 3))) static void text_printf(struct text *t, const char *format, ...)
{
    char line[512];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(line, sizeof line, format, args);
    va_end(args);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line)
        n = (int)sizeof line - 1;
    text_add(t, line, (size_t)n);
}

static const char *const methods[] = { "GET", "POST", "PUT", "DELETE" };
static const char *const resources[] = { "users", "orders", "items", "carts", "reviews", "stores" };
static const char *const words[] = { "alpha", "bravo", "charlie", "delta", "echo", "foxtrot",
                                     "golf", "hotel", "india", "juliet", "kilo", "lima",
                                     "mike", "november", "oscar", "papa", "quebec", "romeo" };
static const char *const colors[] = { "red", "green", "blue", "black", "white", "ochre" };
static const char *const sizes[] = { "XS", "S", "M", "L", "XL" };

static void make_words(struct text *t, struct rng *rng, unsigned count, char separator)
{
    for (unsigned i = 0; i < count; i++) {
        const char *w = words[rng_next(rng) % COUNT(words)];
        if (i)
            text_add(t, &separator, 1);
        text_add(t, w, strlen(w));
    }
}

/* Makes request number `index` into t (reused from request to request). */
static void make_request(struct text *t, unsigned long index)
{
    struct rng rng = { 0x5eed0000ull + index * 7919 };
    t->len = 0;
    text_printf(t, "%s /api/v%u", methods[index % COUNT(methods)], rng_range(&rng, 1, 3));
    unsigned segments = rng_range(&rng, 2, 6);
    for (unsigned i = 0; i < segments; i++)
        text_printf(t, "/%s/%u", resources[rng_next(&rng) % COUNT(resources)], rng_range(&rng, 1, 99999));
    unsigned params = rng_range(&rng, 2, 8);
    for (unsigned i = 0; i < params; i++) {
        text_printf(t, "%c%s=", i ? '&' : '?', words[rng_next(&rng) % COUNT(words)]);
        make_words(t, &rng, rng_range(&rng, 1, 3), '+');
    }
    text_printf(t, " HTTP/1.1\r\nHost: shop%u.example.com\r\n", rng_range(&rng, 1, 40));
    text_printf(t, "User-Agent: request-loop/1.0 (client %lu; build %u)\r\n", index, rng_range(&rng, 100, 999));
    text_printf(t, "Cookie: session=%016llx; theme=%s; lang=%s; cart=%u\r\n",
                (unsigned long long)rng_next(&rng), colors[rng_next(&rng) % COUNT(colors)],
                rng_next(&rng) & 1 ? "en" : "fr", rng_range(&rng, 0, 5000));
    unsigned headers = rng_range(&rng, 6, 16);
    for (unsigned i = 0; i < headers; i++) {
        text_printf(t, "X-%s-%u: ", words[rng_next(&rng) % COUNT(words)], i);
        make_words(t, &rng, rng_range(&rng, 1, 6), ' ');
        text_add(t, "\r\n", 2);
    }
    text_add(t, "\r\n", 2);
    unsigned items = rng_range(&rng, 8, 24);
    for (unsigned i = 0; i < items; i++) {
        text_printf(t, "name=%s-%u&qty=%u&price=%u&color=%s&size=%s", words[rng_next(&rng) % COUNT(words)],
                    rng_range(&rng, 1, 999), rng_range(&rng, 1, 12), rng_range(&rng, 99, 99999),
                    colors[rng_next(&rng) % COUNT(colors)], sizes[rng_next(&rng) % COUNT(sizes)]);
        unsigned extra = rng_range(&rng, 0, 3);
        for (unsigned e = 0; e < extra; e++)
            text_printf(t, "&tag%u=%s", e, words[rng_next(&rng) % COUNT(words)]);
        text_add(t, "&note=", 6);
        make_words(t, &rng, rng_range(&rng, 3, 16), '+');
        text_add(t, "\n", 1);
    }
}

/* ---- the handler: parse into a tree, render, checksum, free ------------------------------ */

struct kv {
    struct kv *next;
    char *key;
    char *value;
};

struct item {
    struct item *next;
    char *name;
    char *note;
    unsigned qty, price;
    struct kv *attrs;
};

struct request {
    char *method;
    char *version;
    char **segments;
    size_t segment_count;
    struct kv *query;
    struct kv *headers;
    struct kv *cookies;
    struct item *items;
    size_t item_count;
    const char *user_agent; /* points into headers */
};

static char *copy(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p == NULL)
        die("request_loop", "string");
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* URL-decodes '+' into ' ' and %XX into its byte, into a fresh string. */
static char *decode(const char *s, size_t n)
{
    char *result = malloc(n + 1), *out = result;
    if (result == NULL)
        die("request_loop", "decode");
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+')
            *out++ = ' ';
        else if (s[i] == '%' && i + 2 < n) {
            char hex[3] = { s[i + 1], s[i + 2], 0 };
            *out++ = (char)strtol(hex, NULL, 16);
            i += 2;
        } else
            *out++ = s[i];
    }
    *out = '\0';
    return result;
}

static struct kv *kv_new(const char *key, size_t key_len, char *value)
{
    struct kv *kv = malloc(sizeof *kv);
    if (kv == NULL)
        die("request_loop", "kv");
    kv->next = NULL;
    kv->key = copy(key, key_len);
    kv->value = value;
    return kv;
}

/* Parses "k=v<sep>k=v..." (s[0..n)) into a list, in order. */
static struct kv *parse_pairs(const char *s, size_t n, char separator, bool trim_spaces)
{
    struct kv *head = NULL, **tail = &head;
    const char *end = s + n;
    while (s < end) {
        while (trim_spaces && s < end && *s == ' ')
            s++;
        const char *stop = memchr(s, separator, (size_t)(end - s));
        if (stop == NULL)
            stop = end;
        const char *equals = memchr(s, '=', (size_t)(stop - s));
        if (equals) {
            *tail = kv_new(s, (size_t)(equals - s), decode(equals + 1, (size_t)(stop - equals - 1)));
            tail = &(*tail)->next;
        }
        s = stop + 1;
    }
    return head;
}

static void free_pairs(struct kv *kv)
{
    while (kv) {
        struct kv *next = kv->next;
        free(kv->key);
        free(kv->value);
        free(kv);
        kv = next;
    }
}

static struct item *parse_item(const char *line, size_t n)
{
    struct item *item = calloc(1, sizeof *item);
    if (item == NULL)
        die("request_loop", "item");
    struct kv *pairs = parse_pairs(line, n, '&', false), **tail = &item->attrs;
    for (struct kv *kv = pairs, *next; kv; kv = next) {
        next = kv->next;
        kv->next = NULL;
        if (strcmp(kv->key, "name") == 0 && !item->name) {
            item->name = kv->value;
        } else if (strcmp(kv->key, "note") == 0 && !item->note) {
            item->note = kv->value;
        } else if (strcmp(kv->key, "qty") == 0) {
            item->qty = (unsigned)strtoul(kv->value, NULL, 10);
            free(kv->value);
        } else if (strcmp(kv->key, "price") == 0) {
            item->price = (unsigned)strtoul(kv->value, NULL, 10);
            free(kv->value);
        } else {
            *tail = kv; /* any other attribute is kept, in order */
            tail = &kv->next;
            continue;
        }
        free(kv->key);
        free(kv);
    }
    return item;
}

NOINLINE struct request *parse_request(const char *raw, size_t len)
{
    struct request *req = calloc(1, sizeof *req);
    if (req == NULL)
        die("request_loop", "request");
    const char *end = raw + len;
    const char *line_end = strstr(raw, "\r\n");
    const char *space1 = memchr(raw, ' ', (size_t)(line_end - raw));
    const char *space2 = memchr(space1 + 1, ' ', (size_t)(line_end - space1 - 1));
    req->method = copy(raw, (size_t)(space1 - raw));
    req->version = copy(space2 + 1, (size_t)(line_end - space2 - 1));

    /* Path segments, into an array that grows as segments come. */
    const char *path = space1 + 1, *query = memchr(path, '?', (size_t)(space2 - path));
    const char *path_end = query ? query : space2;
    size_t cap = 4;
    req->segments = malloc(cap * sizeof *req->segments);
    for (const char *s = path + 1; s < path_end;) {
        const char *slash = memchr(s, '/', (size_t)(path_end - s));
        if (slash == NULL)
            slash = path_end;
        if (req->segment_count == cap) {
            cap *= 2;
            req->segments = realloc(req->segments, cap * sizeof *req->segments);
            if (req->segments == NULL)
                die("request_loop", "segments");
        }
        req->segments[req->segment_count++] = copy(s, (size_t)(slash - s));
        s = slash + 1;
    }
    if (query)
        req->query = parse_pairs(query + 1, (size_t)(space2 - query - 1), '&', false);

    /* Headers, one per line up to the empty line; the Cookie header is split further. */
    struct kv **tail = &req->headers;
    const char *line = line_end + 2;
    while (line < end && !(line[0] == '\r' && line[1] == '\n')) {
        const char *eol = strstr(line, "\r\n");
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        const char *value = colon + 2;
        *tail = kv_new(line, (size_t)(colon - line), copy(value, (size_t)(eol - value)));
        if (strcmp((*tail)->key, "Cookie") == 0)
            req->cookies = parse_pairs(value, (size_t)(eol - value), ';', true);
        if (strcmp((*tail)->key, "User-Agent") == 0)
            req->user_agent = (*tail)->value;
        tail = &(*tail)->next;
        line = eol + 2;
    }

    /* The body: one item per line. */
    struct item **item_tail = &req->items;
    for (const char *s = line + 2; s < end;) {
        const char *eol = memchr(s, '\n', (size_t)(end - s));
        if (eol == NULL)
            eol = end;
        *item_tail = parse_item(s, (size_t)(eol - s));
        item_tail = &(*item_tail)->next;
        req->item_count++;
        s = eol + 1;
    }
    return req;
}

static void json_string(struct text *t, const char *s)
{
    text_add(t, "\"", 1);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            text_add(t, "\\", 1);
        text_add(t, s, 1);
    }
    text_add(t, "\"", 1);
}

/* Renders the response into a buffer that starts small and grows by realloc. */
NOINLINE struct text render_response(const struct request *req)
{
    struct text out = { 0 };
    unsigned long long total = 0;
    text_printf(&out, "%s 200 OK\r\nContent-Type: application/json\r\n\r\n{\"method\": ", req->version);
    json_string(&out, req->method);
    text_add(&out, ", \"path\": [", 11);
    for (size_t i = 0; i < req->segment_count; i++) {
        if (i)
            text_add(&out, ", ", 2);
        json_string(&out, req->segments[i]);
    }
    text_add(&out, "], \"query\": {", 13);
    for (const struct kv *kv = req->query; kv; kv = kv->next) {
        json_string(&out, kv->key);
        text_add(&out, ": ", 2);
        json_string(&out, kv->value);
        text_add(&out, kv->next ? ", " : "", kv->next ? 2 : 0);
    }
    text_add(&out, "}, \"session\": ", 14);
    const struct kv *cookie = req->cookies;
    while (cookie && strcmp(cookie->key, "session") != 0)
        cookie = cookie->next;
    json_string(&out, cookie ? cookie->value : "");
    text_add(&out, ", \"items\": [", 12);
    for (const struct item *item = req->items; item; item = item->next) {
        unsigned long long line_total = (unsigned long long)item->qty * item->price;
        total += line_total;
        text_add(&out, "{\"name\": ", 9);
        json_string(&out, item->name ? item->name : "");
        text_printf(&out, ", \"qty\": %u, \"total\": %llu.%02llu", item->qty, line_total / 100, line_total % 100);
        for (const struct kv *a = item->attrs; a; a = a->next) {
            text_add(&out, ", ", 2);
            json_string(&out, a->key);
            text_add(&out, ": ", 2);
            json_string(&out, a->value);
        }
        text_add(&out, ", \"note\": ", 10);
        json_string(&out, item->note ? item->note : "");
        text_add(&out, item->next ? "}, " : "}", item->next ? 3 : 1);
    }
    text_printf(&out, "], \"total\": %llu.%02llu, \"headers\": ", total / 100, total % 100);
    size_t headers = 0;
    for (const struct kv *kv = req->headers; kv; kv = kv->next)
        headers++;
    text_printf(&out, "%zu}\n", headers);
    return out;
}

NOINLINE void free_request(struct request *req, bool leak_cookies)
{
    for (size_t i = 0; i < req->segment_count; i++)
        free(req->segments[i]);
    free(req->segments);
    free_pairs(req->query);
    free_pairs(req->headers);
    if (!leak_cookies)
        free_pairs(req->cookies);
    for (struct item *item = req->items, *next; item; item = next) {
        next = item->next;
        free(item->name);
        free(item->note);
        free_pairs(item->attrs);
        free(item);
    }
    free(req->method);
    free(req->version);
    free(req);
}

static bool option_leak, option_dangle;
static FILE *access_log;                /* --dangle: where the log lines go */
static const char *previous_user_agent; /* --dangle: the bug, a pointer kept across requests */

/* The access log of --dangle: writes the previous request's User-Agent, which is gone. */
NOINLINE void log_previous_user_agent(const char *agent)
{
    size_t n = strnlen(agent, 200);
    fprintf(access_log, "previous client: %.*s\n", (int)n, agent);
}

/* Handles one request: parse, render, checksum, free. */
NOINLINE uint64_t handle_request(const char *raw, size_t len)
{
    struct request *req = parse_request(raw, len);
    struct text response = render_response(req);
    uint64_t sum = fnv1a(response.data, response.len, FNV_START);
    if (option_dangle) {
        if (previous_user_agent)
            log_previous_user_agent(previous_user_agent);
        previous_user_agent = req->user_agent;
    }
    free(response.data);
    free_request(req, option_leak && strcmp(req->method, "PUT") == 0);
    return sum;
}

static void usage(void)
{
    fprintf(stderr, "usage: request_loop [N] [--leak] [--dangle] [--access-log FILE] [--quiet]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    unsigned long requests = 20000;
    bool quiet = false;
    const char *access_log_path = "/dev/null";
    for (int i = 1; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--leak") == 0)
            option_leak = true;
        else if (strcmp(argv[i], "--dangle") == 0)
            option_dangle = true;
        else if (strcmp(argv[i], "--access-log") == 0 && i + 1 < argc)
            access_log_path = argv[++i];
        else if (strcmp(argv[i], "--quiet") == 0)
            quiet = true;
        else if (argv[i][0] >= '0' && argv[i][0] <= '9' && (requests = strtoul(argv[i], &end, 10), *end == '\0'))
            continue;
        else
            usage();
    }
    if (option_dangle && (access_log = fopen(access_log_path, "w")) == NULL) {
        perror(access_log_path);
        return 1;
    }

    struct text request = { 0 };
    uint64_t checksum = 0;
    for (unsigned long i = 0; i < requests; i++) {
        make_request(&request, i);
        uint64_t sum = handle_request(request.data, request.len);
        checksum = (checksum * 0x100000001b3ull) ^ sum;
    }
    free(request.data);
    if (access_log)
        fclose(access_log);
    if (!quiet)
        printf("request_loop: %lu requests%s%s\n", requests, option_leak ? ", PUT handler leaks" : "",
               option_dangle ? ", dangling User-Agent in the access log" : "");
    printf("checksum %016llx\n", (unsigned long long)checksum);
    return 0;
}
