/*
 * wl_compile.c — a compiler-like pass: for each of N "files" (default 400), generate the
 * source text of a small language (outside the compiler), then compile_unit() lexes it into a
 * token array (realloc), interns identifiers in a hash table, parses it into an AST (one
 * malloc per node), resolves names through a chain of scopes (a hash table per block, made and
 * dropped), folds constants (freeing folded subtrees), emits stack-machine code into a growing
 * buffer, checksums the code and frees everything.  Units range from a few KiB to about 2 MiB
 * of allocations.  Mark compile_unit to give each file a region.
 *
 *     wl_compile [N] [--rss-every K]
 *
 * Prints "checksum <hex>" on stdout, "loop_ns", "start_rss_kib" and "peak_rss_kib" lines on
 * stderr (common.h).  Knows nothing of arenashim.
 */
#include <stdbool.h>

#include "common.h"

/* ---- the source generator ------------------------------------------------------------------ */

static const char *const names[] = { "x", "y", "z", "count", "total", "index", "left", "right",
                                     "acc", "tmp", "value", "limit", "step", "base", "offset" };

static void gen_expr(struct text *t, struct rng *rng, int depth, unsigned locals)
{
    unsigned kind = depth <= 0 ? rng_range(rng, 0, 1) : rng_range(rng, 0, 6);
    switch (kind) {
    case 0:
        text_long(t, rng_range(rng, 0, 1000));
        break;
    case 1:
        text_str(t, names[rng_next(rng) % (locals < COUNT(names) ? locals : COUNT(names))]);
        break;
    case 2:
    case 3:
    case 4: {
        static const char ops[] = "+-*/<>";
        text_char(t, '(');
        gen_expr(t, rng, depth - 1, locals);
        text_char(t, ' ');
        text_char(t, ops[rng_next(rng) % 6]);
        text_char(t, ' ');
        gen_expr(t, rng, depth - 1, locals);
        text_char(t, ')');
        break;
    }
    default: {
        text_str(t, "f");
        text_long(t, rng_range(rng, 0, 40));
        text_char(t, '(');
        for (unsigned i = 0, n = rng_range(rng, 0, 3); i < n; i++) {
            if (i)
                text_str(t, ", ");
            gen_expr(t, rng, depth - 1, locals);
        }
        text_char(t, ')');
        break;
    }
    }
}

static void indent(struct text *t, int level)
{
    for (int i = 0; i < level; i++)
        text_str(t, "  ");
}

static void gen_block(struct text *t, struct rng *rng, int level, unsigned statements, unsigned locals)
{
    text_str(t, "{\n");
    for (unsigned s = 0; s < statements; s++) {
        indent(t, level + 1);
        unsigned kind = level >= 2 ? rng_range(rng, 0, 2) : rng_range(rng, 0, 5);
        if (kind == 0 && locals < COUNT(names)) {
            text_str(t, "let ");
            text_str(t, names[locals++]);
            text_str(t, " = ");
            gen_expr(t, rng, 3, locals - 1 ? locals - 1 : 1);
            text_str(t, ";\n");
        } else if (kind <= 2) {
            text_str(t, names[rng_next(rng) % locals]);
            text_str(t, " = ");
            gen_expr(t, rng, 4, locals);
            text_str(t, ";\n");
        } else if (kind == 3) {
            text_str(t, "if (");
            gen_expr(t, rng, 2, locals);
            text_str(t, ") ");
            gen_block(t, rng, level + 1, rng_range(rng, 1, 4), locals);
            indent(t, level + 1);
            text_str(t, "else ");
            gen_block(t, rng, level + 1, rng_range(rng, 1, 3), locals);
        } else if (kind == 4) {
            text_str(t, "while (");
            gen_expr(t, rng, 2, locals);
            text_str(t, ") ");
            gen_block(t, rng, level + 1, rng_range(rng, 1, 5), locals);
        } else {
            text_str(t, "return ");
            gen_expr(t, rng, 3, locals);
            text_str(t, ";\n");
        }
    }
    indent(t, level);
    text_str(t, "}\n");
}

/* The source of file `index`: a handful to a few hundred functions. */
static void make_file(struct text *t, unsigned long index)
{
    struct rng rng = { 0xc0de0000ull + index * 104729 };
    t->len = 0;
    unsigned functions = rng_range(&rng, 0, 9) == 0 ? rng_range(&rng, 60, 160) : rng_range(&rng, 2, 30);
    for (unsigned f = 0; f < functions; f++) {
        text_str(t, "fn f");
        text_long(t, f);
        text_str(t, "(x, y, z) ");
        gen_block(t, &rng, 0, rng_range(&rng, 3, 14), 3);
    }
}

/* ---- the compiler ---------------------------------------------------------------------------- */

enum tok { T_END, T_NUM, T_IDENT, T_FN, T_LET, T_IF, T_ELSE, T_WHILE, T_RETURN, T_PUNCT };

struct symbol { /* an interned identifier */
    struct symbol *next;
    char *name;
    unsigned id;
};

struct token {
    enum tok kind;
    char punct;
    long long num;
    struct symbol *sym;
};

struct interner {
    struct symbol **buckets;
    size_t size, count;
};

enum node_kind { N_NUM, N_VAR, N_BIN, N_CALL, N_LET, N_ASSIGN, N_IF, N_WHILE, N_RETURN, N_BLOCK, N_FN };

struct node {
    enum node_kind kind;
    char op;
    long long num;
    struct symbol *sym;
    int slot;              /* resolved local slot */
    struct node **kids;    /* operands, arguments, statements */
    size_t n, cap;
};

struct unit {
    struct token *tokens;
    size_t token_count, token_cap, pos;
    struct interner names;
    struct node **functions;
    size_t function_count, function_cap;
    struct text code;
    unsigned long folded;
};

static struct symbol *intern(struct interner *in, const char *s, size_t n)
{
    uint64_t h = fnv1a(s, n, FNV_START);
    for (struct symbol *sym = in->buckets[h & (in->size - 1)]; sym; sym = sym->next)
        if (strncmp(sym->name, s, n) == 0 && sym->name[n] == '\0')
            return sym;
    if (in->count * 2 >= in->size) {
        size_t size = in->size * 2;
        struct symbol **buckets = calloc(size, sizeof *buckets);
        if (buckets == NULL)
            die("wl_compile", "interner");
        for (size_t i = 0; i < in->size; i++)
            for (struct symbol *sym = in->buckets[i], *next; sym; sym = next) {
                next = sym->next;
                size_t b = fnv1a(sym->name, strlen(sym->name), FNV_START) & (size - 1);
                sym->next = buckets[b];
                buckets[b] = sym;
            }
        free(in->buckets);
        in->buckets = buckets;
        in->size = size;
    }
    struct symbol *sym = malloc(sizeof *sym);
    char *name = malloc(n + 1);
    if (sym == NULL || name == NULL)
        die("wl_compile", "symbol");
    memcpy(name, s, n);
    name[n] = '\0';
    sym->name = name;
    sym->id = (unsigned)in->count++;
    size_t b = h & (in->size - 1);
    sym->next = in->buckets[b];
    in->buckets[b] = sym;
    return sym;
}

static void add_token(struct unit *u, struct token t)
{
    if (u->token_count == u->token_cap) {
        u->token_cap = u->token_cap ? u->token_cap * 2 : 64;
        u->tokens = realloc(u->tokens, u->token_cap * sizeof *u->tokens);
        if (u->tokens == NULL)
            die("wl_compile", "tokens");
    }
    u->tokens[u->token_count++] = t;
}

static void lex(struct unit *u, const char *s, size_t len)
{
    static const struct {
        const char *word;
        enum tok kind;
    } keywords[] = { { "fn", T_FN }, { "let", T_LET }, { "if", T_IF }, { "else", T_ELSE },
                     { "while", T_WHILE }, { "return", T_RETURN } };
    const char *end = s + len;
    while (s < end) {
        char c = *s;
        if (c == ' ' || c == '\n' || c == '\t') {
            s++;
        } else if (c >= '0' && c <= '9') {
            long long v = 0;
            while (s < end && *s >= '0' && *s <= '9')
                v = v * 10 + (*s++ - '0');
            add_token(u, (struct token){ .kind = T_NUM, .num = v });
        } else if ((c >= 'a' && c <= 'z') || c == '_') {
            const char *start = s;
            while (s < end && ((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
                s++;
            size_t n = (size_t)(s - start);
            enum tok kind = T_IDENT;
            for (size_t k = 0; k < COUNT(keywords); k++)
                if (strlen(keywords[k].word) == n && memcmp(keywords[k].word, start, n) == 0)
                    kind = keywords[k].kind;
            add_token(u, (struct token){ .kind = kind, .sym = kind == T_IDENT ? intern(&u->names, start, n) : NULL });
        } else {
            add_token(u, (struct token){ .kind = T_PUNCT, .punct = c });
            s++;
        }
    }
    add_token(u, (struct token){ .kind = T_END });
}

static struct node *node_new(enum node_kind kind)
{
    struct node *n = calloc(1, sizeof *n);
    if (n == NULL)
        die("wl_compile", "node");
    n->kind = kind;
    n->slot = -1;
    return n;
}

static void node_add(struct node *parent, struct node *kid)
{
    if (parent->n == parent->cap) {
        parent->cap = parent->cap ? parent->cap * 2 : 2;
        parent->kids = realloc(parent->kids, parent->cap * sizeof *parent->kids);
        if (parent->kids == NULL)
            die("wl_compile", "kids");
    }
    parent->kids[parent->n++] = kid;
}

static void free_node(struct node *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->n; i++)
        free_node(n->kids[i]);
    free(n->kids);
    free(n);
}

static struct token *peek(struct unit *u)
{
    return &u->tokens[u->pos];
}

static bool accept(struct unit *u, char punct)
{
    if (peek(u)->kind == T_PUNCT && peek(u)->punct == punct) {
        u->pos++;
        return true;
    }
    return false;
}

static struct node *parse_expr(struct unit *u);

static struct node *parse_primary(struct unit *u)
{
    struct token *t = peek(u);
    if (t->kind == T_NUM) {
        u->pos++;
        struct node *n = node_new(N_NUM);
        n->num = t->num;
        return n;
    }
    if (t->kind == T_IDENT) {
        u->pos++;
        if (accept(u, '(')) {
            struct node *call = node_new(N_CALL);
            call->sym = t->sym;
            while (!accept(u, ')') && peek(u)->kind != T_END) {
                node_add(call, parse_expr(u));
                accept(u, ',');
            }
            return call;
        }
        struct node *n = node_new(N_VAR);
        n->sym = t->sym;
        return n;
    }
    if (accept(u, '(')) {
        struct node *inner = parse_expr(u);
        accept(u, ')');
        return inner;
    }
    u->pos++; /* error recovery: skip the token */
    return node_new(N_NUM);
}

static int precedence(char op)
{
    switch (op) {
    case '<': case '>': return 1;
    case '+': case '-': return 2;
    case '*': case '/': return 3;
    default: return 0;
    }
}

static struct node *parse_binary(struct unit *u, int min)
{
    struct node *left = parse_primary(u);
    for (;;) {
        struct token *t = peek(u);
        int p = t->kind == T_PUNCT ? precedence(t->punct) : 0;
        if (p == 0 || p < min)
            return left;
        u->pos++;
        struct node *bin = node_new(N_BIN);
        bin->op = t->punct;
        node_add(bin, left);
        node_add(bin, parse_binary(u, p + 1));
        left = bin;
    }
}

static struct node *parse_expr(struct unit *u)
{
    return parse_binary(u, 1);
}

static struct node *parse_block(struct unit *u);

static struct node *parse_statement(struct unit *u)
{
    struct token *t = peek(u);
    struct node *n;
    switch (t->kind) {
    case T_LET:
        u->pos++;
        n = node_new(N_LET);
        n->sym = peek(u)->sym;
        u->pos++;
        accept(u, '=');
        node_add(n, parse_expr(u));
        accept(u, ';');
        return n;
    case T_IF:
        u->pos++;
        n = node_new(N_IF);
        accept(u, '(');
        node_add(n, parse_expr(u));
        accept(u, ')');
        node_add(n, parse_block(u));
        if (peek(u)->kind == T_ELSE) {
            u->pos++;
            node_add(n, parse_block(u));
        }
        return n;
    case T_WHILE:
        u->pos++;
        n = node_new(N_WHILE);
        accept(u, '(');
        node_add(n, parse_expr(u));
        accept(u, ')');
        node_add(n, parse_block(u));
        return n;
    case T_RETURN:
        u->pos++;
        n = node_new(N_RETURN);
        node_add(n, parse_expr(u));
        accept(u, ';');
        return n;
    default:
        n = node_new(N_ASSIGN);
        n->sym = t->sym;
        u->pos++;
        accept(u, '=');
        node_add(n, parse_expr(u));
        accept(u, ';');
        return n;
    }
}

static struct node *parse_block(struct unit *u)
{
    struct node *block = node_new(N_BLOCK);
    accept(u, '{');
    while (!accept(u, '}') && peek(u)->kind != T_END)
        node_add(block, parse_statement(u));
    return block;
}

static void parse(struct unit *u)
{
    while (peek(u)->kind == T_FN) {
        u->pos++;
        struct node *fn = node_new(N_FN);
        fn->sym = peek(u)->sym;
        u->pos++;
        accept(u, '(');
        while (!accept(u, ')') && peek(u)->kind != T_END) {
            struct node *param = node_new(N_LET);
            param->sym = peek(u)->sym;
            u->pos++;
            node_add(fn, param);
            accept(u, ',');
        }
        node_add(fn, parse_block(u));
        if (u->function_count == u->function_cap) {
            u->function_cap = u->function_cap ? u->function_cap * 2 : 8;
            u->functions = realloc(u->functions, u->function_cap * sizeof *u->functions);
            if (u->functions == NULL)
                die("wl_compile", "functions");
        }
        u->functions[u->function_count++] = fn;
    }
}

/* -- name resolution: a chain of scopes, each a small hash table ------------------------------- */

struct binding {
    struct binding *next;
    struct symbol *sym;
    int slot;
};

struct scope {
    struct scope *parent;
    struct binding **buckets;
    size_t size;
};

static struct scope *scope_push(struct scope *parent)
{
    struct scope *s = malloc(sizeof *s);
    if (s == NULL)
        die("wl_compile", "scope");
    s->parent = parent;
    s->size = 8;
    s->buckets = calloc(s->size, sizeof *s->buckets);
    if (s->buckets == NULL)
        die("wl_compile", "scope buckets");
    return s;
}

static struct scope *scope_pop(struct scope *s)
{
    struct scope *parent = s->parent;
    for (size_t i = 0; i < s->size; i++)
        for (struct binding *b = s->buckets[i], *next; b; b = next) {
            next = b->next;
            free(b);
        }
    free(s->buckets);
    free(s);
    return parent;
}

static void bind(struct scope *s, struct symbol *sym, int slot)
{
    struct binding *b = malloc(sizeof *b);
    if (b == NULL)
        die("wl_compile", "binding");
    b->sym = sym;
    b->slot = slot;
    b->next = s->buckets[sym->id & (s->size - 1)];
    s->buckets[sym->id & (s->size - 1)] = b;
}

static int lookup(struct scope *s, struct symbol *sym)
{
    for (; s; s = s->parent)
        for (struct binding *b = s->buckets[sym->id & (s->size - 1)]; b; b = b->next)
            if (b->sym == sym)
                return b->slot;
    return -1;
}

/* Resolves names and folds constant binary operations (freeing the folded operands). */
static void resolve(struct unit *u, struct node *n, struct scope **scope, int *slots)
{
    if (n->kind == N_BLOCK)
        *scope = scope_push(*scope);
    for (size_t i = 0; i < n->n; i++)
        resolve(u, n->kids[i], scope, slots);
    switch (n->kind) {
    case N_VAR:
    case N_ASSIGN:
        n->slot = lookup(*scope, n->sym);
        break;
    case N_LET:
        n->slot = (*slots)++;
        bind(*scope, n->sym, n->slot);
        break;
    case N_BIN:
        if (n->kids[0]->kind == N_NUM && n->kids[1]->kind == N_NUM) {
            long long a = n->kids[0]->num, b = n->kids[1]->num, r;
            switch (n->op) {
            case '+': r = a + b; break;
            case '-': r = a - b; break;
            case '*': r = a * b; break;
            case '/': r = b ? a / b : 0; break;
            case '<': r = a < b; break;
            default: r = a > b; break;
            }
            free_node(n->kids[0]);
            free_node(n->kids[1]);
            free(n->kids);
            n->kids = NULL;
            n->n = n->cap = 0;
            n->kind = N_NUM;
            n->num = r;
            u->folded++;
        }
        break;
    default:
        break;
    }
    if (n->kind == N_BLOCK)
        *scope = scope_pop(*scope);
}

/* -- code generation ----------------------------------------------------------------------------- */

static unsigned label_counter;

static void emit(struct text *code, const char *op, long long arg, bool with_arg)
{
    text_str(code, op);
    if (with_arg) {
        text_char(code, ' ');
        text_long(code, arg);
    }
    text_char(code, '\n');
}

static void gen(struct unit *u, const struct node *n)
{
    struct text *c = &u->code;
    switch (n->kind) {
    case N_NUM:
        emit(c, "push", n->num, true);
        break;
    case N_VAR:
        emit(c, n->slot >= 0 ? "load" : "loadg", n->slot >= 0 ? n->slot : (long long)n->sym->id, true);
        break;
    case N_BIN: {
        gen(u, n->kids[0]);
        gen(u, n->kids[1]);
        char op[4] = { 'o', 'p', n->op, 0 };
        emit(c, op, 0, false);
        break;
    }
    case N_CALL:
        for (size_t i = 0; i < n->n; i++)
            gen(u, n->kids[i]);
        text_str(c, "call ");
        text_str(c, n->sym->name);
        text_char(c, '/');
        text_long(c, (long long)n->n);
        text_char(c, '\n');
        break;
    case N_LET:
    case N_ASSIGN:
        if (n->n) {
            gen(u, n->kids[0]);
            emit(c, n->slot >= 0 ? "store" : "storeg", n->slot >= 0 ? n->slot : (long long)n->sym->id, true);
        }
        break;
    case N_IF: {
        unsigned otherwise = label_counter++, done = label_counter++;
        gen(u, n->kids[0]);
        emit(c, "jz", otherwise, true);
        gen(u, n->kids[1]);
        emit(c, "jmp", done, true);
        emit(c, "label", otherwise, true);
        if (n->n > 2)
            gen(u, n->kids[2]);
        emit(c, "label", done, true);
        break;
    }
    case N_WHILE: {
        unsigned top = label_counter++, done = label_counter++;
        emit(c, "label", top, true);
        gen(u, n->kids[0]);
        emit(c, "jz", done, true);
        gen(u, n->kids[1]);
        emit(c, "jmp", top, true);
        emit(c, "label", done, true);
        break;
    }
    case N_RETURN:
        gen(u, n->kids[0]);
        emit(c, "ret", 0, false);
        break;
    case N_BLOCK:
    case N_FN:
        for (size_t i = 0; i < n->n; i++)
            gen(u, n->kids[i]);
        break;
    }
}

/* Compiles one file; returns the checksum of its code.  The natural function to mark. */
NOINLINE uint64_t compile_unit(const char *source, size_t len)
{
    struct unit u = { 0 };
    u.names.size = 64;
    u.names.buckets = calloc(u.names.size, sizeof *u.names.buckets);
    if (u.names.buckets == NULL)
        die("wl_compile", "interner");
    label_counter = 0;
    lex(&u, source, len);
    parse(&u);
    for (size_t f = 0; f < u.function_count; f++) {
        struct node *fn = u.functions[f];
        struct scope *scope = scope_push(NULL);
        int slots = 0;
        resolve(&u, fn, &scope, &slots);
        scope_pop(scope);
        text_str(&u.code, "function ");
        text_str(&u.code, fn->sym->name);
        text_str(&u.code, " locals ");
        text_long(&u.code, slots);
        text_char(&u.code, '\n');
        gen(&u, fn);
    }
    text_str(&u.code, "folded ");
    text_long(&u.code, (long long)u.folded);
    uint64_t sum = fnv1a(u.code.data, u.code.len, FNV_START);

    free(u.code.data);
    for (size_t f = 0; f < u.function_count; f++)
        free_node(u.functions[f]);
    free(u.functions);
    for (size_t i = 0; i < u.names.size; i++)
        for (struct symbol *sym = u.names.buckets[i], *next; sym; sym = next) {
            next = sym->next;
            free(sym->name);
            free(sym);
        }
    free(u.names.buckets);
    free(u.tokens);
    return sum;
}

int main(int argc, char **argv)
{
    struct options o = { .count = 400 };
    if (!parse_options(argc, argv, &o) || o.threads || o.leak) {
        fprintf(stderr, "usage: wl_compile [N] [--rss-every K]\n");
        return 2;
    }
    return run_workload(&o, make_file, compile_unit);
}
