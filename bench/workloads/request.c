/*
 * request.c — an HTTP-like request handler: parse the request line, query and headers into
 * lists, parse a JSON body into a tree of nodes, compute (totals, a hash table of attribute
 * counts, items sorted by price), render a JSON response into a growing buffer, checksum it
 * and free it all.  A few hundred small mallocs per request (about 16-64 KiB), some reallocs,
 * a calloc'd table and a qsort'd array.  Nothing here knows of arenashim.
 */
#include "request.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int leaky_handler;

/* ---- the "network": request text, made outside the handler ------------------------------- */

static const char *const methods[] = { "GET", "POST", "PUT", "PATCH" };
static const char *const resources[] = { "users", "orders", "items", "carts", "reviews", "stores" };
static const char *const words[] = { "alpha", "bravo", "charlie", "delta", "echo", "foxtrot",
                                     "golf", "hotel", "india", "juliet", "kilo", "lima",
                                     "mike", "november", "oscar", "papa", "quebec", "romeo",
                                     "sierra", "tango", "uniform", "victor", "whiskey" };
static const char *const colors[] = { "red", "green", "blue", "black", "white", "ochre", "teal" };
static const char *const sizes[] = { "XS", "S", "M", "L", "XL", "XXL" };
static const char *const tiers[] = { "free", "silver", "gold", "platinum" };

static const char *pick(struct rng *rng, const char *const *list, size_t count)
{
    return list[rng_next(rng) % count];
}

#define PICK(rng, list) pick(rng, list, COUNT(list))

static void add_words(struct text *t, struct rng *rng, unsigned count, char separator)
{
    for (unsigned i = 0; i < count; i++) {
        if (i)
            text_char(t, separator);
        text_str(t, PICK(rng, words));
    }
}

void make_request(struct text *t, unsigned long index)
{
    struct rng rng = { 0xbe7c4000ull + index * 7919 };
    t->len = 0;
    text_str(t, methods[index % COUNT(methods)]);
    text_str(t, " /api/v");
    text_long(t, rng_range(&rng, 1, 3));
    for (unsigned i = 0, n = rng_range(&rng, 2, 6); i < n; i++) {
        text_char(t, '/');
        text_str(t, PICK(&rng, resources));
        text_char(t, '/');
        text_long(t, rng_range(&rng, 1, 99999));
    }
    for (unsigned i = 0, n = rng_range(&rng, 1, 6); i < n; i++) {
        text_char(t, i ? '&' : '?');
        text_str(t, PICK(&rng, words));
        text_char(t, '=');
        add_words(t, &rng, rng_range(&rng, 1, 3), '+');
    }
    text_str(t, " HTTP/1.1\r\nHost: shop");
    text_long(t, rng_range(&rng, 1, 40));
    text_str(t, ".example.com\r\nUser-Agent: wl/1.0 (client ");
    text_long(t, (long long)index);
    text_str(t, ")\r\n");
    if (rng_range(&rng, 0, 5) == 0)
        text_str(t, "X-Retry: 1\r\n");
    for (unsigned i = 0, n = rng_range(&rng, 4, 12); i < n; i++) {
        text_str(t, "X-");
        text_str(t, PICK(&rng, words));
        text_char(t, '-');
        text_long(t, i);
        text_str(t, ": ");
        add_words(t, &rng, rng_range(&rng, 1, 5), ' ');
        text_str(t, "\r\n");
    }
    text_str(t, "\r\n{\"customer\": {\"id\": ");
    text_long(t, rng_range(&rng, 1, 1000000));
    text_str(t, ", \"name\": \"");
    add_words(t, &rng, 2, ' ');
    text_str(t, "\", \"tier\": \"");
    text_str(t, PICK(&rng, tiers));
    text_str(t, "\", \"tags\": [");
    for (unsigned i = 0, n = rng_range(&rng, 0, 6); i < n; i++) {
        text_str(t, i ? ", \"" : "\"");
        text_str(t, PICK(&rng, words));
        text_char(t, '"');
    }
    text_str(t, "]}, \"currency\": \"EUR\", \"items\": [");
    for (unsigned i = 0, n = rng_range(&rng, 5, 26); i < n; i++) {
        text_str(t, i ? ", {\"sku\": \"" : "{\"sku\": \"");
        text_str(t, PICK(&rng, words));
        text_char(t, '-');
        text_long(t, rng_range(&rng, 1, 9999));
        text_str(t, "\", \"qty\": ");
        text_long(t, rng_range(&rng, 1, 12));
        text_str(t, ", \"price\": ");
        text_long(t, rng_range(&rng, 99, 99999));
        text_str(t, ", \"attrs\": {\"color\": \"");
        text_str(t, PICK(&rng, colors));
        text_str(t, "\", \"size\": \"");
        text_str(t, PICK(&rng, sizes));
        text_char(t, '"');
        for (unsigned e = 0, extra = rng_range(&rng, 0, 3); e < extra; e++) {
            text_str(t, ", \"tag");
            text_long(t, e);
            text_str(t, "\": \"");
            text_str(t, PICK(&rng, words));
            text_char(t, '"');
        }
        text_str(t, "}, \"note\": \"");
        add_words(t, &rng, rng_range(&rng, 2, 12), ' ');
        text_str(t, "\"}");
    }
    text_str(t, "], \"meta\": {\"trace\": [");
    for (unsigned i = 0, n = rng_range(&rng, 2, 10); i < n; i++) {
        if (i)
            text_str(t, ", ");
        text_long(t, (long long)(rng_next(&rng) & 0xffffff));
    }
    text_str(t, "]}}\n");
}

/* ---- the parsed request -------------------------------------------------------------------- */

struct pair {
    struct pair *next;
    char *name;
    char *value;
};

enum jtype { J_NUM, J_STR, J_ARR, J_OBJ, J_BAD };

struct jnode {
    enum jtype type;
    char *key; /* member name inside an object */
    long long num;
    char *str;
    struct jnode **kids;
    size_t n, cap;
};

struct request {
    char *method;
    char **segments;
    size_t segment_count;
    struct pair *query;
    struct pair *headers;
    struct jnode *body;
    bool retry;
};

static char *copy(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p == NULL)
        die("request", "string");
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static struct pair *pair_new(const char *name, size_t name_len, const char *value, size_t value_len)
{
    struct pair *p = malloc(sizeof *p);
    if (p == NULL)
        die("request", "pair");
    p->next = NULL;
    p->name = copy(name, name_len);
    p->value = copy(value, value_len);
    for (char *c = p->value; *c; c++)
        if (*c == '+')
            *c = ' ';
    return p;
}

static void free_pairs(struct pair *p)
{
    while (p) {
        struct pair *next = p->next;
        free(p->name);
        free(p->value);
        free(p);
        p = next;
    }
}

/* -- JSON: a recursive-descent parser into jnodes ------------------------------------------- */

struct cursor {
    const char *s, *end;
};

static void skip_space(struct cursor *c)
{
    while (c->s < c->end && (*c->s == ' ' || *c->s == '\n' || *c->s == '\r' || *c->s == '\t'))
        c->s++;
}

static struct jnode *jnode_new(enum jtype type)
{
    struct jnode *j = calloc(1, sizeof *j);
    if (j == NULL)
        die("request", "jnode");
    j->type = type;
    return j;
}

static void jnode_add(struct jnode *parent, struct jnode *kid)
{
    if (parent->n == parent->cap) {
        parent->cap = parent->cap ? parent->cap * 2 : 4;
        parent->kids = realloc(parent->kids, parent->cap * sizeof *parent->kids);
        if (parent->kids == NULL)
            die("request", "kids");
    }
    parent->kids[parent->n++] = kid;
}

static char *parse_string(struct cursor *c)
{
    const char *start = ++c->s; /* after the quote */
    size_t escapes = 0;
    while (c->s < c->end && *c->s != '"') {
        if (*c->s == '\\') {
            c->s++;
            escapes++;
        }
        c->s++;
    }
    size_t n = (size_t)(c->s - start);
    char *out = malloc(n - escapes + 1), *o = out;
    if (out == NULL)
        die("request", "json string");
    for (const char *p = start; p < c->s; p++) {
        if (*p == '\\')
            p++;
        *o++ = *p;
    }
    *o = '\0';
    if (c->s < c->end)
        c->s++;
    return out;
}

static struct jnode *parse_value(struct cursor *c, int depth)
{
    skip_space(c);
    if (c->s >= c->end || depth > 32)
        return jnode_new(J_BAD);
    char ch = *c->s;
    if (ch == '"') {
        struct jnode *j = jnode_new(J_STR);
        j->str = parse_string(c);
        return j;
    }
    if (ch == '[' || ch == '{') {
        bool object = ch == '{';
        struct jnode *j = jnode_new(object ? J_OBJ : J_ARR);
        c->s++;
        for (;;) {
            skip_space(c);
            if (c->s >= c->end)
                break;
            if (*c->s == (object ? '}' : ']')) {
                c->s++;
                break;
            }
            if (*c->s == ',') {
                c->s++;
                continue;
            }
            char *key = NULL;
            if (object) {
                if (*c->s != '"')
                    break;
                key = parse_string(c);
                skip_space(c);
                if (c->s < c->end && *c->s == ':')
                    c->s++;
            }
            struct jnode *kid = parse_value(c, depth + 1);
            kid->key = key;
            jnode_add(j, kid);
        }
        return j;
    }
    struct jnode *j = jnode_new(J_NUM);
    char *stop;
    j->num = strtoll(c->s, &stop, 10);
    if (stop == c->s) {
        j->type = J_BAD;
        c->s++;
    } else
        c->s = stop;
    return j;
}

static void free_json(struct jnode *j)
{
    for (size_t i = 0; i < j->n; i++)
        free_json(j->kids[i]);
    free(j->kids);
    free(j->key);
    free(j->str);
    free(j);
}

static const struct jnode *member(const struct jnode *j, const char *key)
{
    if (j == NULL || j->type != J_OBJ)
        return NULL;
    for (size_t i = 0; i < j->n; i++)
        if (strcmp(j->kids[i]->key, key) == 0)
            return j->kids[i];
    return NULL;
}

static long long number(const struct jnode *j)
{
    return j && j->type == J_NUM ? j->num : 0;
}

static const char *string(const struct jnode *j)
{
    return j && j->type == J_STR ? j->str : "";
}

/* -- the request ---------------------------------------------------------------------------- */

NOINLINE struct request *parse_request(const char *raw, size_t len)
{
    struct request *req = calloc(1, sizeof *req);
    if (req == NULL)
        die("request", "request");
    const char *end = raw + len;
    const char *line_end = strstr(raw, "\r\n");
    const char *space1 = memchr(raw, ' ', (size_t)(line_end - raw));
    const char *space2 = memchr(space1 + 1, ' ', (size_t)(line_end - space1 - 1));
    req->method = copy(raw, (size_t)(space1 - raw));

    const char *path = space1 + 1, *query = memchr(path, '?', (size_t)(space2 - path));
    const char *path_end = query ? query : space2;
    size_t cap = 2;
    req->segments = malloc(cap * sizeof *req->segments);
    for (const char *s = path + 1; s < path_end;) {
        const char *slash = memchr(s, '/', (size_t)(path_end - s));
        if (slash == NULL)
            slash = path_end;
        if (req->segment_count == cap) {
            cap *= 2;
            req->segments = realloc(req->segments, cap * sizeof *req->segments);
            if (req->segments == NULL)
                die("request", "segments");
        }
        req->segments[req->segment_count++] = copy(s, (size_t)(slash - s));
        s = slash + 1;
    }
    if (query) {
        struct pair **tail = &req->query;
        for (const char *s = query + 1; s < space2;) {
            const char *amp = memchr(s, '&', (size_t)(space2 - s));
            if (amp == NULL)
                amp = space2;
            const char *eq = memchr(s, '=', (size_t)(amp - s));
            if (eq) {
                *tail = pair_new(s, (size_t)(eq - s), eq + 1, (size_t)(amp - eq - 1));
                tail = &(*tail)->next;
            }
            s = amp + 1;
        }
    }

    struct pair **tail = &req->headers;
    const char *line = line_end + 2;
    while (line + 1 < end && !(line[0] == '\r' && line[1] == '\n')) {
        const char *eol = strstr(line, "\r\n");
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        *tail = pair_new(line, (size_t)(colon - line), colon + 2, (size_t)(eol - colon - 2));
        if (strcmp((*tail)->name, "X-Retry") == 0)
            req->retry = true;
        tail = &(*tail)->next;
        line = eol + 2;
    }
    struct cursor c = { line + 2, end };
    req->body = parse_value(&c, 0);
    return req;
}

/* Counts of attribute values over all items: a chained hash table. */
struct count {
    struct count *next;
    char *key;
    unsigned n;
};

struct counts {
    struct count **buckets;
    size_t size, used;
};

static uint64_t hash_str(const char *s)
{
    return fnv1a(s, strlen(s), FNV_START);
}

static void counts_add(struct counts *t, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    char key[160];
    if (nl + vl + 2 > sizeof key)
        return;
    memcpy(key, name, nl);
    key[nl] = '=';
    memcpy(key + nl + 1, value, vl + 1);
    size_t b = hash_str(key) & (t->size - 1);
    for (struct count *e = t->buckets[b]; e; e = e->next)
        if (strcmp(e->key, key) == 0) {
            e->n++;
            return;
        }
    if (t->used * 2 >= t->size) { /* grow and rehash */
        size_t size = t->size * 2;
        struct count **buckets = calloc(size, sizeof *buckets);
        if (buckets == NULL)
            die("request", "buckets");
        for (size_t i = 0; i < t->size; i++)
            for (struct count *e = t->buckets[i], *next; e; e = next) {
                next = e->next;
                size_t nb = hash_str(e->key) & (size - 1);
                e->next = buckets[nb];
                buckets[nb] = e;
            }
        free(t->buckets);
        t->buckets = buckets;
        t->size = size;
        b = hash_str(key) & (size - 1);
    }
    struct count *e = malloc(sizeof *e);
    if (e == NULL)
        die("request", "count");
    e->key = copy(key, nl + vl + 1);
    e->n = 1;
    e->next = t->buckets[b];
    t->buckets[b] = e;
    t->used++;
}

static int by_price(const void *a, const void *b)
{
    const struct jnode *x = *(const struct jnode *const *)a, *y = *(const struct jnode *const *)b;
    long long px = number(member(x, "price")), py = number(member(y, "price"));
    if (px != py)
        return px < py ? -1 : 1;
    return strcmp(string(member(x, "sku")), string(member(y, "sku")));
}

static int by_key(const void *a, const void *b)
{
    return strcmp((*(const struct count *const *)a)->key, (*(const struct count *const *)b)->key);
}

static void json_string(struct text *out, const char *s)
{
    text_char(out, '"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            text_char(out, '\\');
        text_char(out, *s);
    }
    text_char(out, '"');
}

NOINLINE struct text render_response(const struct request *req)
{
    struct text out = { 0 };
    text_str(&out, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"method\": ");
    json_string(&out, req->method);
    text_str(&out, ", \"path\": [");
    for (size_t i = 0; i < req->segment_count; i++) {
        if (i)
            text_str(&out, ", ");
        json_string(&out, req->segments[i]);
    }
    text_str(&out, "], \"query\": {");
    for (const struct pair *p = req->query; p; p = p->next) {
        json_string(&out, p->name);
        text_str(&out, ": ");
        json_string(&out, p->value);
        if (p->next)
            text_str(&out, ", ");
    }
    const struct jnode *customer = member(req->body, "customer");
    text_str(&out, "}, \"customer\": ");
    text_long(&out, number(member(customer, "id")));
    text_str(&out, ", \"tier\": ");
    json_string(&out, string(member(customer, "tier")));

    /* Items sorted by price, and the counts of their attribute values. */
    const struct jnode *items = member(req->body, "items");
    size_t n = items && items->type == J_ARR ? items->n : 0;
    const struct jnode **sorted = malloc((n ? n : 1) * sizeof *sorted);
    if (sorted == NULL)
        die("request", "sorted");
    for (size_t i = 0; i < n; i++)
        sorted[i] = items->kids[i];
    qsort(sorted, n, sizeof *sorted, by_price);
    struct counts counts = { calloc(16, sizeof(struct count *)), 16, 0 };
    if (counts.buckets == NULL)
        die("request", "buckets");
    long long total = 0;
    text_str(&out, ", \"items\": [");
    for (size_t i = 0; i < n; i++) {
        const struct jnode *item = sorted[i];
        long long line = number(member(item, "qty")) * number(member(item, "price"));
        total += line;
        text_str(&out, i ? ", {\"sku\": " : "{\"sku\": ");
        json_string(&out, string(member(item, "sku")));
        text_str(&out, ", \"line\": ");
        text_long(&out, line);
        const struct jnode *attrs = member(item, "attrs");
        for (size_t a = 0; attrs && a < attrs->n; a++) {
            text_str(&out, ", ");
            json_string(&out, attrs->kids[a]->key);
            text_str(&out, ": ");
            json_string(&out, string(attrs->kids[a]));
            counts_add(&counts, attrs->kids[a]->key, string(attrs->kids[a]));
        }
        /* The note, upper-cased into a scratch copy. */
        const char *note = string(member(item, "note"));
        char *shout = copy(note, strlen(note));
        for (char *c = shout; *c; c++)
            if (*c >= 'a' && *c <= 'z')
                *c = (char)(*c - 'a' + 'A');
        text_str(&out, ", \"note\": ");
        json_string(&out, shout);
        free(shout);
        text_char(&out, '}');
    }
    text_str(&out, "], \"total\": ");
    text_long(&out, total);

    struct count **list = malloc((counts.used ? counts.used : 1) * sizeof *list);
    if (list == NULL)
        die("request", "list");
    size_t used = 0;
    for (size_t b = 0; b < counts.size; b++)
        for (struct count *e = counts.buckets[b]; e; e = e->next)
            list[used++] = e;
    qsort(list, used, sizeof *list, by_key);
    text_str(&out, ", \"facets\": {");
    for (size_t i = 0; i < used; i++) {
        if (i)
            text_str(&out, ", ");
        json_string(&out, list[i]->key);
        text_str(&out, ": ");
        text_long(&out, list[i]->n);
        free(list[i]->key);
        free(list[i]);
    }
    text_str(&out, "}, \"headers\": ");
    size_t headers = 0;
    for (const struct pair *p = req->headers; p; p = p->next)
        headers++;
    text_long(&out, (long long)headers);
    text_str(&out, "}\n");
    free(list);
    free(counts.buckets);
    free(sorted);
    return out;
}

NOINLINE void free_request(struct request *req, bool keep_body)
{
    for (size_t i = 0; i < req->segment_count; i++)
        free(req->segments[i]);
    free(req->segments);
    free_pairs(req->query);
    free_pairs(req->headers);
    if (!keep_body)
        free_json(req->body);
    free(req->method);
    free(req);
}

NOINLINE uint64_t handle_request(const char *raw, size_t len)
{
    struct request *req = parse_request(raw, len);
    struct text response = render_response(req);
    uint64_t sum = fnv1a(response.data, response.len, FNV_START);
    free(response.data);
    /* The bug of the leaky handler: the retry path forgets the body. */
    free_request(req, leaky_handler && req->retry);
    return sum;
}
