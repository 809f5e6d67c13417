/*
 * test_timeseries.c — the statistics over time (preload/report/timeseries.c): recorded only
 * with stats_json; bounded in samples and scan records however long the run (the clock is
 * driven through timeseries_tick_at, so a "long run" takes no time); monotonic in time and in
 * every count; the last sample and the size distributions agree with the markers' totals,
 * regions the hooks end untouched included; many threads at once.
 */
#include "check.h"

#include <pthread.h>

#include "marker_table.h"
#include "stats_out.h"
#include "timeseries.h"

#define MS ((uint64_t)1000000)

static void set_markers(unsigned count)
{
    REQUIRE(core_markers_init(count) && marker_table_init(count));
    for (unsigned i = 0; i < count; i++) {
        struct marker_entry *entry = marker_table_entry((int32_t)i);
        snprintf(entry->spec, sizeof entry->spec, "m%u", i);
        entry->resolved = true;
    }
}

static void start(const char *options, unsigned markers)
{
    test_setup(options);
    set_markers(markers);
    timeseries_init();
    REQUIRE(timeseries_enabled());
}

static char series_text[4 << 20];

/* The "timeseries" member as the statistics JSON holds it. */
static const char *series_json(void)
{
    struct text text = { series_text, sizeof series_text, 0 };
    timeseries_append_json(&text);
    REQUIRE(text_finish(&text) < sizeof series_text);
    REQUIRE(strncmp(series_text, "\"timeseries\": {", 15) == 0);
    return series_text;
}

/* The numbers of the array "key": [...] first found after from; their count. */
static unsigned numbers(const char *from, const char *key, double *out, unsigned max)
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\": [", key);
    const char *p = strstr(from, pattern);
    REQUIRE(p != NULL);
    p += strlen(pattern);
    unsigned count = 0;
    while (*p != ']') {
        char *end;
        double v = strtod(p, &end);
        REQUIRE(end != p && count < max);
        out[count++] = v;
        p = end;
        while (*p == ',' || *p == ' ')
            p++;
    }
    return count;
}

static double number(const char *from, const char *key)
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\": ", key);
    const char *p = strstr(from, pattern);
    REQUIRE(p != NULL);
    return strtod(p + strlen(pattern), NULL);
}

/* The object of marker name in the series' "markers" list, or NULL. */
static const char *marker_series(const char *text, const char *name)
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, "{\"marker\": \"%s\"", name);
    return strstr(text, pattern);
}

/* A region of marker that allocates the given sizes, through the core's slow end. */
static void region_with(struct thread_state *t, int32_t marker, const size_t *sizes, unsigned count)
{
    region_begin(t, marker, 0);
    for (unsigned i = 0; i < count; i++)
        REQUIRE(region_alloc(t->innermost, sizes[i]) != NULL);
    region_end(t, 0);
}

/* A region ended as the hooks' fast path ends it (hook/runtime.c): never seen by the
 * observer. */
static void untouched_region(struct thread_state *t, int32_t marker)
{
    struct region *region = region_record_new();
    REQUIRE(region != NULL);
    region_init(region, t, marker, 0);
    region_push(t, region);
    REQUIRE(region_end_untouched(t, region));
    region_record_free(region);
}

/* The bucket of a region of bytes, by counting: 0 for 0 bytes, k for [2^(k-1), 2^k). */
static unsigned expected_bucket(uint64_t bytes)
{
    unsigned k = 0;
    while (k < 64 && ((uint64_t)1 << k) <= bytes)
        k++;
    return bytes >= ((uint64_t)1 << 63) ? 64 : k;
}

static void test_off_without_stats_json(void)
{
    test_setup("");
    set_markers(1);
    timeseries_init();
    CHECK(!timeseries_enabled());
    struct thread_state *t = test_thread();
    size_t size = 100;
    region_with(t, 0, &size, 1);
    static char json[16384];
    REQUIRE(stats_format_json(json, sizeof json) < sizeof json);
    CHECK_MSG(strstr(json, "\"timeseries\"") == NULL, "a series without stats_json: %.200s", json);
    CHECK_STR_CONTAINS(json, "\"regions_begun\": 1");
}

static void test_bounded_on_a_long_run(void)
{
    /* 20000 ticks 5 ms apart, a region of marker 0 and one of the API's between each: a run
     * of 100 s on the series' clock. */
    start("stats_json=/nonexistent/x.json", 1);
    struct thread_state *t = test_thread();
    uint64_t base = monotonic_ns();
    const unsigned ticks = 20000;
    for (unsigned k = 0; k < ticks; k++) {
        size_t size = 16 + (k % 50) * 10;
        region_with(t, 0, &size, 1);
        region_with(t, MARKER_API, &size, 1);
        timeseries_tick_at(base + (uint64_t)(k + 1) * 5 * MS);
    }
    const char *json = series_json();
    static double tt[1024], regions[1024], bytes[1024], api[1024], rss[1024];
    unsigned samples = numbers(json, "t", tt, 1024);
    double interval = number(json, "interval_s");
    CHECK_MSG(samples <= SERIES_SAMPLES_MAX && samples >= SERIES_SAMPLES_MAX / 2,
              "%u samples over 100 s (at most %u, at least half of that)", samples, SERIES_SAMPLES_MAX);
    CHECK_MSG(interval * SERIES_SAMPLES_MAX >= 100.0 && interval <= 1.0,
              "interval %.3f s for a 100 s run of at most %u samples", interval, SERIES_SAMPLES_MAX);
    CHECK_EQ(numbers(json, "rss_bytes", rss, 1024), samples);
    const char *m0 = marker_series(json, "m0");
    const char *api_series = marker_series(json, "(api)");
    REQUIRE(m0 && api_series);
    CHECK_EQ(numbers(m0, "regions", regions, 1024), samples);
    CHECK_EQ(numbers(m0, "bytes", bytes, 1024), samples);
    CHECK_EQ(numbers(api_series, "regions", api, 1024), samples);
    CHECK(tt[0] == 0);
    for (unsigned i = 1; i < samples; i++) {
        CHECK_MSG(tt[i] >= tt[i - 1], "t[%u] = %f < t[%u] = %f", i, tt[i], i - 1, tt[i - 1]);
        /* Spread evenly: no gap wider than twice the interval (a sample waits for the first
         * tick at or past its time, and halving keeps each sample's delay). */
        CHECK_MSG(tt[i] - tt[i - 1] <= 2 * interval, "gap %f s at sample %u (interval %f s)",
                  tt[i] - tt[i - 1], i, interval);
        CHECK(regions[i] >= regions[i - 1] && bytes[i] >= bytes[i - 1] && api[i] >= api[i - 1]);
        CHECK_MSG(rss[i] > 0, "rss_bytes[%u] = 0: /proc/self/statm not read", i);
    }
    /* Samples are taken as time passes, whatever else: the regions between them. */
    CHECK_MSG(tt[samples - 1] >= 100.0 - interval - 0.005, "the last sample at %f s of 100 s", tt[samples - 1]);
    CHECK_MSG(regions[samples - 1] >= ticks - 2 * interval / 0.005, "regions %f at the last sample", regions[samples - 1]);
}

static void test_agrees_with_totals(void)
{
    start("stats_json=/nonexistent/x.json", 2);
    struct thread_state *t = test_thread();
    size_t cs = core_config.chunk_size;
    /* Marker 0: regions of known sizes, one of them a span, two of 0 bytes (one through each
     * end path).  Marker 1: untouched regions only.  The API: two regions. */
    static const size_t one[] = { 1 }, two[] = { 2 }, three[] = { 1, 2 }, hundred[] = { 60, 40 },
                        page[] = { 4096 }, page_and_one[] = { 4096, 1 };
    size_t span[] = { 3 * cs };
    uint64_t expected[SERIES_SIZE_BUCKETS] = { 0 };
    struct { const size_t *sizes; unsigned count; } regions[] = {
        { one, 1 }, { two, 1 }, { three, 2 }, { hundred, 2 }, { page, 1 }, { page_and_one, 2 }, { span, 1 },
        { NULL, 0 },
    };
    uint64_t total_bytes = 0;
    for (unsigned r = 0; r < sizeof regions / sizeof regions[0]; r++) {
        region_with(t, 0, regions[r].sizes, regions[r].count);
        uint64_t bytes = 0;
        for (unsigned i = 0; i < regions[r].count; i++)
            bytes += regions[r].sizes[i];
        expected[expected_bucket(bytes)]++;
        total_bytes += bytes;
    }
    untouched_region(t, 0);
    expected[0]++;
    for (unsigned i = 0; i < 5; i++)
        untouched_region(t, 1);
    region_with(t, MARKER_API, one, 1);
    region_with(t, MARKER_API, page, 1);
    timeseries_finish();

    const char *json = series_json();
    static double tt[1024], values[1024], sizes[128];
    unsigned samples = numbers(json, "t", tt, 1024);
    CHECK(samples >= 2); /* the first, at start-up, and the last */
    const char *m0 = marker_series(json, "m0"), *m1 = marker_series(json, "m1"),
               *api = marker_series(json, "(api)");
    REQUIRE(m0 && m1 && api);

    CHECK_EQ(numbers(m0, "regions", values, 1024), samples);
    CHECK_EQ((uint64_t)values[samples - 1], marker_counters_of(0)->regions);
    CHECK_EQ((uint64_t)values[samples - 1], 9);
    CHECK_EQ(numbers(m0, "bytes", values, 1024), samples);
    CHECK_EQ((uint64_t)values[samples - 1], total_bytes);
    CHECK_EQ((uint64_t)values[samples - 1], marker_counters_of(0)->bytes);
    unsigned buckets = numbers(m0, "region_sizes", sizes, 128);
    CHECK(buckets <= SERIES_SIZE_BUCKETS);
    for (unsigned b = 0; b < SERIES_SIZE_BUCKETS; b++)
        CHECK_MSG((uint64_t)(b < buckets ? sizes[b] : 0) == expected[b], "m0 bucket %u: %llu, expected %llu", b,
                  (unsigned long long)(b < buckets ? sizes[b] : 0), (unsigned long long)expected[b]);
    /* The largest region falls in the last bucket. */
    CHECK_EQ(buckets, expected_bucket(marker_counters_of(0)->peak_bytes) + 1);

    /* Untouched regions only: every one in the 0-byte bucket, though none was observed. */
    CHECK_EQ(numbers(m1, "regions", values, 1024), samples);
    CHECK_EQ((uint64_t)values[samples - 1], 5);
    CHECK_EQ(numbers(m1, "region_sizes", sizes, 128), 1);
    CHECK_EQ((uint64_t)sizes[0], 5);

    /* The API's regions have no marker counters: the series counts them itself. */
    CHECK_EQ(numbers(api, "regions", values, 1024), samples);
    CHECK_EQ((uint64_t)values[samples - 1], 2);
    CHECK_EQ(numbers(api, "bytes", values, 1024), samples);
    CHECK_EQ((uint64_t)values[samples - 1], 1 + 4096);
    CHECK_EQ(numbers(api, "region_sizes", sizes, 128), expected_bucket(4096) + 1);
    CHECK_EQ((uint64_t)sizes[expected_bucket(1)], 1);
    CHECK_EQ((uint64_t)sizes[expected_bucket(4096)], 1);
    CHECK_EQ((uint64_t)number(json, "markers_without_series"), 0);
}

static void test_scan_records_bounded(void)
{
    /* 1000 scans: 256 recorded one by one, then every other one, then one in four: 250 kept,
     * scans 0, 4, 8, ... 996, in order. */
    start("stats_json=/nonexistent/x.json", 0);
    uint64_t base = monotonic_ns();
    for (unsigned n = 0; n < 1000; n++)
        timeseries_note_scan(base + (uint64_t)(n + 1) * MS, 100, 200 + n, 4096, 2 * n, n, 1);
    const char *json = series_json();
    CHECK_EQ((uint64_t)number(json, "scans_every"), 4);
    const char *records = strstr(json, "\"scan_records\": [");
    REQUIRE(records != NULL);
    unsigned count = 0;
    for (const char *p = records; (p = strstr(p, "{\"start_s\": ")) != NULL; p++) {
        double start_s = number(p, "start_s");
        unsigned n = (unsigned)(number(p, "pause_ns") - 200);
        CHECK_MSG(n == count * 4, "record %u is of scan %u", count, n);
        CHECK_MSG(start_s > (n + 1) * 0.001 - 0.0005 && start_s < (n + 1) * 0.001 + 0.01,
                  "record of scan %u starts at %f s", n, start_s);
        CHECK_EQ((uint64_t)number(p, "quarantine_before"), 2 * n);
        count++;
    }
    CHECK_EQ(count, 250);
    CHECK(count <= SERIES_SCANS_MAX);
}

static void test_markers_beyond_the_limit(void)
{
    /* 40 markers with regions: the first 32 to end one get a series, the JSON counts the rest. */
    start("stats_json=/nonexistent/x.json", 40);
    struct thread_state *t = test_thread();
    size_t size = 64;
    for (unsigned m = 0; m < 40; m++)
        region_with(t, (int32_t)m, &size, 1);
    timeseries_finish();
    const char *json = series_json();
    CHECK_EQ((uint64_t)number(json, "markers_without_series"), 40 - SERIES_MARKERS_MAX);
    CHECK(marker_series(json, "m0") != NULL);
    CHECK(marker_series(json, "m31") != NULL);
    CHECK(marker_series(json, "m32") == NULL);
}

#define WORKERS 4
#define WORKER_REGIONS 3000

static void *worker(void *arg)
{
    int32_t marker = (int32_t)(uintptr_t)arg;
    struct thread_state *t = test_thread();
    for (unsigned k = 0; k < WORKER_REGIONS; k++) {
        if (k % 3 == 0) {
            untouched_region(t, marker);
        } else {
            size_t size = 8 + k % 2000;
            region_with(t, marker, &size, 1);
        }
        timeseries_tick(); /* the real clock, as the collector calls it */
    }
    thread_state_exit(t);
    return NULL;
}

static void test_threads_agree_with_totals(void)
{
    start("stats_json=/nonexistent/x.json", WORKERS);
    pthread_t threads[WORKERS];
    for (unsigned i = 0; i < WORKERS; i++)
        pthread_create(&threads[i], NULL, worker, (void *)(uintptr_t)i);
    for (unsigned i = 0; i < 50; i++) {
        struct text text = { series_text, sizeof series_text, 0 };
        timeseries_append_json(&text); /* arenashim_stats_json while the program runs */
        usleep(100);
    }
    for (unsigned i = 0; i < WORKERS; i++)
        pthread_join(threads[i], NULL);
    timeseries_finish();
    const char *json = series_json();
    static double tt[1024], values[1024], sizes[128];
    unsigned samples = numbers(json, "t", tt, 1024);
    for (unsigned i = 1; i < samples; i++)
        CHECK(tt[i] >= tt[i - 1]);
    for (unsigned m = 0; m < WORKERS; m++) {
        char name[8];
        snprintf(name, sizeof name, "m%u", m);
        const char *entry = marker_series(json, name);
        REQUIRE(entry != NULL);
        CHECK_EQ(numbers(entry, "regions", values, 1024), samples);
        for (unsigned i = 1; i < samples; i++)
            CHECK(values[i] >= values[i - 1]);
        CHECK_EQ((uint64_t)values[samples - 1], WORKER_REGIONS);
        CHECK_EQ(numbers(entry, "bytes", values, 1024), samples);
        CHECK_EQ((uint64_t)values[samples - 1], marker_counters_of((int32_t)m)->bytes);
        unsigned buckets = numbers(entry, "region_sizes", sizes, 128);
        double sum = 0;
        for (unsigned b = 0; b < buckets; b++)
            sum += sizes[b];
        CHECK_EQ((uint64_t)sum, WORKER_REGIONS);
        CHECK_EQ((uint64_t)sizes[0], WORKER_REGIONS / 3);
    }
}

static const struct test_case cases[] = {
    TEST_CASE(off_without_stats_json),
    TEST_CASE(bounded_on_a_long_run),
    TEST_CASE(agrees_with_totals),
    TEST_CASE(scan_records_bounded),
    TEST_CASE(markers_beyond_the_limit),
    TEST_CASE(threads_agree_with_totals),
};

int main(int argc, char **argv)
{
    return check_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
