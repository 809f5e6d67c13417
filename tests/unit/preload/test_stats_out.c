/*
 * test_stats_out.c — the statistics emitter (preload/report/stats_out.c): the JSON object
 * parses and holds every key of the design brief with the values of a known sequence of
 * operations; both formats have snprintf semantics; markers are named as their table says.
 */
#include "check.h"
#include "json.h"

#include <pthread.h>

#include "marker_table.h"
#include "stats_out.h"

/* Marker ids 0..count-1 with these specs, as the marker layer would set them up. */
static void set_markers(unsigned count, const char *const *specs, const bool *resolved)
{
    REQUIRE(core_markers_init(count) && marker_table_init(count));
    for (unsigned i = 0; i < count; i++) {
        struct marker_entry *entry = marker_table_entry((int32_t)i);
        strcpy(entry->spec, specs[i]);
        entry->resolved = resolved[i];
    }
}

static char json_text[16384];
static struct json_doc doc;

static void format_and_parse(void)
{
    stats_count_kernel_mappings();
    size_t n = stats_format_json(json_text, sizeof json_text);
    REQUIRE(n < sizeof json_text);
    CHECK_EQ(strlen(json_text), n);
    bool ok = json_parse(&doc, json_text);
    CHECK_MSG(ok, "stats JSON does not parse: %s\n%s", doc.error, json_text);
    if (!ok)
        exit(1);
    const struct json_value *root = json_find(&doc, "");
    REQUIRE(root && root->kind == JSON_OBJECT);
}

static uint64_t get(const char *key)
{
    uint64_t v = 0;
    CHECK_MSG(json_u64(&doc, key, &v), "stats JSON has no integer '%s'", key);
    return v;
}

#define CHECK_KEY(key, expected)                                                             \
    do {                                                                                     \
        uint64_t check_v_ = get(key);                                                        \
        CHECK_MSG(check_v_ == (uint64_t)(expected), "%s = %llu, expected %llu", key,         \
                  (unsigned long long)check_v_, (unsigned long long)(expected));             \
    } while (0)

static void test_keys_fresh(void)
{
    test_setup("");
    format_and_parse();
    static const char *brief_keys[] = {
        "regions_begun", "regions_ended", "region_allocs", "region_bytes", "chunks_mapped",
        "chunks_quarantined", "chunks_reused", "scans", "scan_bytes", "dangling_accesses",
        "escaped_frees",
    };
    for (size_t i = 0; i < sizeof brief_keys / sizeof brief_keys[0]; i++)
        CHECK_KEY(brief_keys[i], 0);
    const struct json_value *markers = json_find(&doc, "markers");
    CHECK(markers && markers->kind == JSON_ARRAY && markers->count == 0);
    CHECK_KEY("chunk_size", core_config.chunk_size);
}

static void test_known_sequence(void)
{
    test_setup("");
    size_t cs = core_config.chunk_size;
    static const char *const specs[] = { "main:handle_request", "libfoo.so:never\"loaded\\" };
    static const bool resolved[] = { true, false };
    set_markers(2, specs, resolved);

    struct thread_state *t = test_thread();

    /* R1 (API): three objects. */
    region_begin(t, MARKER_API, 0);
    char *r1 = region_alloc(t->innermost, 10);
    region_alloc(t->innermost, 20);
    region_alloc(t->innermost, 30);
    region_end(t, 0);
    /* R2 (marker 0): two objects, one free that is ignored, one that is undone. */
    region_begin(t, 0, 0);
    char *a = region_alloc(t->innermost, 100);
    region_alloc(t->innermost, 200);
    region_free(t, a);
    char *c = region_alloc(t->innermost, 300);
    region_free(t, c);
    region_end(t, 0);
    /* R3 (marker 0): empty. */
    region_begin(t, 0, 0);
    region_end(t, 0);
    /* R4 (API): a span of two chunks. */
    region_begin(t, MARKER_API, 0);
    region_alloc(t->innermost, cs);
    region_end(t, 0);
    /* An arena with two objects, destroyed without a thread: its chunk is quarantined. */
    struct region *arena = arena_create(0);
    arena_alloc(arena, 16, 0);
    arena_alloc(arena, 32, 256);
    arena_destroy(arena, NULL, 0);
    /* An escaped free. */
    region_free(t, r1);

    format_and_parse();
    CHECK_KEY("regions_begun", 5);
    CHECK_KEY("regions_ended", 5);
    CHECK_KEY("region_allocs", 3 + 3 + 1 + 2);
    CHECK_KEY("region_bytes", 60 + 600 + cs + 48);
    CHECK_KEY("chunks_mapped", 1 + 2 + 1 + 2); /* and two fresh chunks take the span's pages */
    CHECK_KEY("chunks_reused", 0);
    CHECK_KEY("chunks_quarantined", 2 + 1);
    CHECK_KEY("quarantine_bytes", 3 * cs);
    CHECK_KEY("scans", 0);
    CHECK_KEY("scan_bytes", 0);
    CHECK_KEY("dangling_accesses", 0);
    CHECK_KEY("escaped_frees", 1);
    CHECK_KEY("frees_ignored", 1);
    CHECK_KEY("frees_undone", 1);
    CHECK_KEY("fault_calls", 4); /* R1, R2, R4, the arena; none for the empty R3 */
    /* Every fault is a system call, and so is mapping the chunks they faulted. */
    CHECK_MSG(get("memory_calls") >= get("fault_calls") + get("chunks_mapped"),
              "memory_calls %llu < fault_calls + chunks_mapped",
              (unsigned long long)get("memory_calls"));
    /* This process's own mappings: the executable, libc, the stack, the reservation...
     * (counted when asked; format_and_parse asks first) */
    CHECK_MSG(get("kernel_mappings") >= 5, "kernel_mappings = %llu",
              (unsigned long long)get("kernel_mappings"));
    CHECK_KEY("chunk_size", cs);

    const struct json_value *markers = json_find(&doc, "markers");
    REQUIRE(markers && markers->kind == JSON_ARRAY);
    CHECK_EQ(markers->count, 2);
    const struct json_value *spec0 = json_find(&doc, "markers[0].spec");
    const struct json_value *spec1 = json_find(&doc, "markers[1].spec");
    REQUIRE(spec0 && spec1);
    CHECK(spec0->kind == JSON_STRING && strcmp(spec0->text, "main:handle_request") == 0);
    CHECK_MSG(spec1->kind == JSON_STRING && strcmp(spec1->text, "libfoo.so:never\"loaded\\") == 0,
              "marker spec not escaped right: %s", spec1->text);
    const struct json_value *resolved0 = json_find(&doc, "markers[0].resolved");
    const struct json_value *resolved1 = json_find(&doc, "markers[1].resolved");
    CHECK(resolved0 && resolved0->kind == JSON_TRUE);
    CHECK(resolved1 && resolved1->kind == JSON_FALSE);
    CHECK_KEY("markers[0].regions", 2);
    CHECK_KEY("markers[0].bytes", 600);
    CHECK_KEY("markers[1].regions", 0);
    CHECK_KEY("markers[1].bytes", 0);

    /* The text summary tells the same story. */
    char text[4096];
    size_t n = stats_format_text(text, sizeof text);
    CHECK_EQ(strlen(text), n);
    CHECK_STR_CONTAINS(text, "5 begun, 5 ended");
    CHECK_STR_CONTAINS(text, "6 mapped, 0 reused, 3 quarantined");
    CHECK_STR_CONTAINS(text, "main:handle_request");
    CHECK_STR_CONTAINS(text, "1 after region end");

    /* Thread exit folds the counters once: the totals do not change. */
    thread_state_exit(t);
    format_and_parse();
    CHECK_KEY("regions_begun", 5);
    CHECK_KEY("regions_ended", 5);
    CHECK_KEY("region_allocs", 9);
    CHECK_KEY("escaped_frees", 1);
    CHECK_KEY("frees_ignored", 1);
    /* ... and its spares (R1's tail, the two that took the span's pages) went to quarantine. */
    CHECK_KEY("chunks_quarantined", 3 + 3);
}

static void test_control_characters_escaped(void)
{
    test_setup("");
    static const char *const specs[] = { "tab\there\nnewline\x01" };
    static const bool resolved[] = { false };
    set_markers(1, specs, resolved);
    format_and_parse();
    const struct json_value *spec = json_find(&doc, "markers[0].spec");
    CHECK(spec && strcmp(spec->text, "tab\there\nnewline\x01") == 0);
}

static void check_snprintf_semantics(size_t (*format)(char *, size_t), const char *what)
{
    char full[16384];
    size_t n = format(NULL, 0);
    CHECK_MSG(n > 20, "%s: length %zu", what, n);
    REQUIRE(n < sizeof full);
    CHECK_EQ(format(full, sizeof full), n);
    CHECK_EQ(strlen(full), n);

    /* Exactly enough room. */
    char *exact = malloc(n + 1);
    REQUIRE(exact != NULL);
    CHECK_EQ(format(exact, n + 1), n);
    CHECK(strcmp(exact, full) == 0);
    /* One byte short: truncated by one, terminated. */
    CHECK_EQ(format(exact, n), n);
    CHECK_EQ(strlen(exact), n - 1);
    CHECK(memcmp(exact, full, n - 1) == 0);
    free(exact);

    for (size_t len = 1; len < 40; len += 3) {
        char small[64];
        memset(small, 'Z', sizeof small);
        CHECK_MSG(format(small, len) == n, "%s with len %zu: wrong length", what, len);
        CHECK_MSG(small[len - 1] == '\0', "%s with len %zu: not terminated", what, len);
        CHECK(strlen(small) == len - 1);
        CHECK(memcmp(small, full, len - 1) == 0);
        CHECK_MSG(all_bytes_are(small + len, sizeof small - len, 'Z'),
                  "%s with len %zu wrote past the buffer", what, len);
    }
    /* len 0 writes nothing at all. */
    char untouched = 'Q';
    CHECK_EQ(format(&untouched, 0), n);
    CHECK(untouched == 'Q');
}

static void test_snprintf_semantics(void)
{
    test_setup("");
    static const char *const specs[] = { "main:f" };
    static const bool resolved[] = { true };
    set_markers(1, specs, resolved);
    struct thread_state *t = test_thread();
    region_begin(t, 0, 0);
    region_alloc(t->innermost, 100);
    region_end(t, 0);
    check_snprintf_semantics(stats_format_json, "stats_format_json");
    check_snprintf_semantics(stats_format_text, "stats_format_text");
}

static void test_open_region_counts(void)
{
    /* Live threads count in the snapshot: a region begun is counted before it ends. */
    test_setup("");
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    format_and_parse();
    CHECK_KEY("regions_begun", 1);
    CHECK_KEY("regions_ended", 0);
    region_end(t, 0);
    format_and_parse();
    CHECK_KEY("regions_ended", 1);
}

static void test_marker_names(void)
{
    test_setup("");
    static const char *const specs[] = { "main:f" };
    static const bool resolved[] = { true };
    set_markers(1, specs, resolved);
    CHECK(strcmp(marker_name(MARKER_ARENA), "(arena)") == 0);
    CHECK(strcmp(marker_name(MARKER_API), "(api)") == 0);
    CHECK(strcmp(marker_name(0), "main:f") == 0);
    CHECK(strcmp(marker_name(1), "(unknown)") == 0);
    marker_table_refuse(0, "a reason");
    CHECK(marker_table_entry(0)->refused && strcmp(marker_table_entry(0)->reason, "a reason") == 0);
}

static volatile int stop_workers;

static void *churn_worker(void *arg)
{
    (void)arg;
    struct thread_state *t = test_thread();
    while (!__atomic_load_n(&stop_workers, __ATOMIC_RELAXED)) {
        region_begin(t, MARKER_API, 0);
        for (int k = 0; k < 20; k++)
            region_alloc(t->innermost, 16 + (size_t)k * 40);
        region_end(t, 0);
    }
    thread_state_exit(t);
    return NULL;
}

static void test_stats_json_while_running(void)
{
    /* arenashim_stats_json may be called from any thread at any time. */
    test_setup("");
    pthread_t th[3];
    for (unsigned i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, churn_worker, NULL);
    char buf[4096];
    for (int i = 0; i < 200; i++) {
        CHECK(stats_format_json(buf, sizeof buf) < sizeof buf);
        CHECK(strstr(buf, "\"regions_begun\"") != NULL);
        usleep(200);
    }
    __atomic_store_n(&stop_workers, 1, __ATOMIC_RELAXED);
    for (unsigned i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
}

static const struct test_case cases[] = {
    TEST_CASE(marker_names),
    TEST_CASE(stats_json_while_running),
    TEST_CASE(keys_fresh),
    TEST_CASE(known_sequence),
    TEST_CASE(control_characters_escaped),
    TEST_CASE(snprintf_semantics),
    TEST_CASE(open_region_counts),
};

int main(int argc, char **argv)
{
    return check_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
