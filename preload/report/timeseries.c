/*
 * timeseries.c — the statistics over time: what `arenashim report --html` draws.
 *
 * Layer: preload, report.  Owns the "timeseries" member of the statistics JSON: samples of the
 * resident set, the quarantine and the scans so far, and per marker its regions and bytes so
 * far; the distribution of region sizes per marker; and a record of each scan (start, time
 * with the world running, pause, what it read and released).
 *
 * Bounded.  At most SERIES_SAMPLES_MAX samples are kept: when the ring is full every other
 * sample is dropped and the interval doubles, so a run of any length keeps samples evenly
 * spread over all of it, and a file of a few hundred KiB at most.  Scans likewise: when
 * SERIES_SCANS_MAX are recorded, every other one is dropped and one scan in twice as many is
 * recorded from then on.  SERIES_MARKERS_MAX markers get a series and a size distribution of
 * their own, the first to end a region; the JSON says how many more had regions.
 *
 * Cheap.  Nothing here runs on a fast path.  Samples are taken on slow paths that run anyway
 * (a region that ends through the core's slow path, a region starting in a chunk: the core's
 * observer hooks; the collector after a scan), after a look at the coarse clock
 * (CLOCK_MONOTONIC_COARSE: a vDSO read of a variable) says the interval has passed; one
 * thread samples at a time (a try-lock; the others go on).  A region's size is counted in its
 * marker's distribution as it ends (the same slow path).  Regions that the hooks end untouched
 * (no chunk, so 0 bytes) never reach the slow path: the 0-byte bucket of a marker is made up
 * at output from its region count.  Everything lives in one metadata mapping made at start-up:
 * nothing comes from malloc.
 */
#include "timeseries.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "marker_table.h"
#include "proc.h"

struct series_marker {
    int32_t marker;
    uint64_t regions_seen; /* regions of this marker that ended through the slow path */
    uint64_t bytes_seen;
    uint64_t sizes[SERIES_SIZE_BUCKETS];
    uint64_t regions[SERIES_SAMPLES_MAX]; /* so far, at each sample */
    uint64_t bytes[SERIES_SAMPLES_MAX];
};

struct scan_record {
    uint64_t start_ns; /* since start-up */
    uint64_t concurrent_ns, pause_ns, bytes, quarantine_before, quarantine_after, chunks_released;
};

struct series_storage {
    uint64_t t_ns[SERIES_SAMPLES_MAX]; /* since start-up */
    uint64_t rss_bytes[SERIES_SAMPLES_MAX];
    uint64_t quarantine_bytes[SERIES_SAMPLES_MAX];
    uint64_t scans[SERIES_SAMPLES_MAX];
    uint64_t scan_pause_ns[SERIES_SAMPLES_MAX]; /* all pauses so far */
    struct series_marker markers[SERIES_MARKERS_MAX];
    struct scan_record scan_records[SERIES_SCANS_MAX];
};

#define FIRST_INTERVAL_NS ((uint64_t)1000000)

static struct {
    struct series_storage *storage; /* NULL: not recording */
    spin_lock lock; /* everything below, and the storage */
    uint64_t start_ns;
    uint64_t interval_ns;
    uint64_t next_due_ns; /* read without the lock */
    unsigned samples;
    unsigned thinned; /* times every other sample was dropped (the interval doubled) */
    unsigned marker_count; /* series_marker entries in use (published with release) */
    unsigned scan_records;
    uint64_t scans_seen;
    uint64_t scan_every; /* scans recorded: those whose number is a multiple of this */
} series;

bool timeseries_enabled(void)
{
    return series.storage != NULL;
}

static uint64_t coarse_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t resident_bytes(void)
{
    char buffer[128];
    if (!proc_read_file("/proc/self/statm", buffer, sizeof buffer))
        return 0;
    char *end;
    strtoull(buffer, &end, 10); /* size */
    unsigned long long pages = strtoull(end, NULL, 10);
    return (uint64_t)pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

static struct series_marker *find_marker(int32_t marker)
{
    unsigned count = __atomic_load_n(&series.marker_count, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < count; i++)
        if (series.storage->markers[i].marker == marker)
            return &series.storage->markers[i];
    return NULL;
}

/* Under the lock: marker's entry, made when there is room; NULL otherwise. */
static struct series_marker *claim_marker_locked(int32_t marker)
{
    struct series_marker *entry = find_marker(marker);
    if (entry != NULL || series.marker_count == SERIES_MARKERS_MAX)
        return entry;
    entry = &series.storage->markers[series.marker_count];
    entry->marker = marker; /* its samples so far are 0: it had no region at any of them */
    __atomic_store_n(&series.marker_count, series.marker_count + 1, __ATOMIC_RELEASE);
    return entry;
}

/* Markers that ended a region since the last sample, untouched ones included, get a series. */
static void claim_active_markers_locked(void)
{
    for (unsigned i = 0; i < core_config.marker_count && series.marker_count < SERIES_MARKERS_MAX; i++)
        if (__atomic_load_n(&core_config.markers[i].regions, __ATOMIC_RELAXED) != 0)
            claim_marker_locked((int32_t)i);
}

static uint64_t load(const uint64_t *counter)
{
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

/* Drops every other sample (the first stays) and doubles the interval. */
static void halve_samples_locked(void)
{
    struct series_storage *s = series.storage;
    unsigned kept = (series.samples + 1) / 2;
    for (unsigned i = 0; i < kept; i++) {
        s->t_ns[i] = s->t_ns[2 * i];
        s->rss_bytes[i] = s->rss_bytes[2 * i];
        s->quarantine_bytes[i] = s->quarantine_bytes[2 * i];
        s->scans[i] = s->scans[2 * i];
        s->scan_pause_ns[i] = s->scan_pause_ns[2 * i];
        for (unsigned m = 0; m < series.marker_count; m++) {
            s->markers[m].regions[i] = s->markers[m].regions[2 * i];
            s->markers[m].bytes[i] = s->markers[m].bytes[2 * i];
        }
    }
    series.samples = kept;
    series.interval_ns *= 2;
    series.thinned++;
}

/* A sample at now_ns; the next is due at due_base_ns + the interval (the coarse clock's time
 * when the coarse clock said this one was due: comparing the next look at it against the
 * precise clock would wait an extra tick). */
static void sample_locked(uint64_t now_ns, uint64_t due_base_ns)
{
    int saved_errno = errno; /* this runs inside malloc and free */
    struct series_storage *s = series.storage;
    if (series.samples == SERIES_SAMPLES_MAX)
        halve_samples_locked();
    unsigned i = series.samples;
    uint64_t t = now_ns > series.start_ns ? now_ns - series.start_ns : 0;
    if (i > 0 && t < s->t_ns[i - 1])
        t = s->t_ns[i - 1]; /* a caller's clock read before the previous sample's */
    s->t_ns[i] = t;
    s->rss_bytes[i] = resident_bytes();
    s->quarantine_bytes[i] = quarantine_bytes();
    s->scans[i] = load(&core_counters.scans);
    s->scan_pause_ns[i] = load(&core_counters.scan_ns);
    claim_active_markers_locked();
    for (unsigned m = 0; m < series.marker_count; m++) {
        struct series_marker *entry = &s->markers[m];
        const struct marker_counters *counters = marker_counters_of(entry->marker);
        entry->regions[i] = counters ? load(&counters->regions) : load(&entry->regions_seen);
        entry->bytes[i] = counters ? load(&counters->bytes) : load(&entry->bytes_seen);
    }
    series.samples = i + 1;
    __atomic_store_n(&series.next_due_ns, due_base_ns + series.interval_ns, __ATOMIC_RELAXED);
    errno = saved_errno;
}

/* A sample when clock_ns (of the clock next_due_ns is kept in) has reached it; the sample's
 * own time is now_ns (precise). */
static void tick(uint64_t clock_ns, uint64_t now_ns)
{
    if (series.storage == NULL || clock_ns < __atomic_load_n(&series.next_due_ns, __ATOMIC_RELAXED))
        return;
    if (!spin_try_lock(&series.lock))
        return; /* another thread is sampling now */
    if (clock_ns >= series.next_due_ns)
        sample_locked(now_ns, clock_ns);
    spin_lock_release(&series.lock);
}

void timeseries_tick_at(uint64_t now_ns)
{
    tick(now_ns, now_ns);
}

void timeseries_tick(void)
{
    if (series.storage == NULL)
        return;
    uint64_t coarse = coarse_ns();
    if (coarse < __atomic_load_n(&series.next_due_ns, __ATOMIC_RELAXED))
        return;
    tick(coarse, monotonic_ns());
}

static unsigned size_bucket(uint64_t bytes)
{
    return bytes == 0 ? 0 : 64 - (unsigned)__builtin_clzll(bytes);
}

static void observe_region_ended(int32_t marker, uint64_t bytes)
{
    struct series_marker *entry = find_marker(marker);
    if (entry == NULL) {
        spin_lock_acquire(&series.lock);
        entry = claim_marker_locked(marker);
        spin_lock_release(&series.lock);
    }
    if (entry != NULL) {
        __atomic_fetch_add(&entry->sizes[size_bucket(bytes)], 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&entry->bytes_seen, bytes, __ATOMIC_RELAXED);
        /* Last: the output's 0-byte bucket is the marker's regions less this. */
        __atomic_fetch_add(&entry->regions_seen, 1, __ATOMIC_RELEASE);
    }
    timeseries_tick();
}

static const struct core_observer observer = {
    .region_ended = observe_region_ended,
    .chunk_started = timeseries_tick,
};

void timeseries_init(void)
{
    if (!core_config.options.stats_json[0] || series.storage != NULL)
        return;
    struct series_storage *storage = metadata_map(sizeof *storage);
    if (storage == NULL)
        return;
    struct timespec resolution;
    uint64_t coarse_step = clock_getres(CLOCK_MONOTONIC_COARSE, &resolution) == 0
                               ? (uint64_t)resolution.tv_sec * 1000000000ull + (uint64_t)resolution.tv_nsec
                               : 0;
    /* Finer than the coarse clock would only fill the ring with a burst of samples per tick. */
    series.interval_ns = coarse_step > FIRST_INTERVAL_NS ? coarse_step : FIRST_INTERVAL_NS;
    series.scan_every = 1;
    series.start_ns = monotonic_ns();
    series.storage = storage;
    spin_lock_acquire(&series.lock);
    sample_locked(series.start_ns, series.start_ns);
    spin_lock_release(&series.lock);
    core_set_observer(&observer);
}

void timeseries_note_scan(uint64_t start_ns, uint64_t concurrent_ns, uint64_t pause_ns, uint64_t bytes,
                          uint64_t quarantine_before, uint64_t quarantine_after, uint64_t chunks_released)
{
    if (series.storage == NULL)
        return;
    spin_lock_acquire(&series.lock);
    uint64_t number = series.scans_seen++;
    if (number % series.scan_every == 0 && series.scan_records == SERIES_SCANS_MAX) {
        struct scan_record *records = series.storage->scan_records;
        for (unsigned i = 0; i < SERIES_SCANS_MAX / 2; i++)
            records[i] = records[2 * i];
        series.scan_records = SERIES_SCANS_MAX / 2;
        series.scan_every *= 2;
    }
    if (number % series.scan_every == 0) {
        series.storage->scan_records[series.scan_records++] = (struct scan_record){
            .start_ns = start_ns > series.start_ns ? start_ns - series.start_ns : 0,
            .concurrent_ns = concurrent_ns,
            .pause_ns = pause_ns,
            .bytes = bytes,
            .quarantine_before = quarantine_before,
            .quarantine_after = quarantine_after,
            .chunks_released = chunks_released,
        };
    }
    spin_lock_release(&series.lock);
    timeseries_tick();
}

/* The lock, waiting a bounded time: the JSON is also written from the fatal-signal path,
 * where the holder may be the very thread the signal interrupted. */
static bool lock_bounded(void)
{
    for (unsigned tries = 0; tries < 4096; tries++) {
        if (spin_try_lock(&series.lock))
            return true;
        if (tries < 64)
            cpu_relax();
        else
            sched_yield();
    }
    return false;
}

void timeseries_finish(void)
{
    if (series.storage == NULL || !lock_bounded())
        return;
    uint64_t now = monotonic_ns();
    sample_locked(now, now);
    spin_lock_release(&series.lock);
}

static void append_seconds(struct text *out, const char *key, const uint64_t *ns, unsigned count)
{
    text_append(out, "\"%s\": [", key);
    for (unsigned i = 0; i < count; i++)
        text_append(out, "%s%.6f", i ? ", " : "", (double)ns[i] / 1e9);
    text_append(out, "], ");
}

static void append_counts(struct text *out, const char *key, const uint64_t *values, unsigned count)
{
    text_append(out, "\"%s\": [", key);
    for (unsigned i = 0; i < count; i++)
        text_append(out, "%s%llu", i ? ", " : "", (unsigned long long)values[i]);
    text_append(out, "]");
}

static void append_marker(struct text *out, const struct series_marker *entry, unsigned samples)
{
    text_append(out, "{\"marker\": ");
    text_json_string(out, marker_name(entry->marker));
    text_append(out, ", \"id\": %d, ", entry->marker);
    append_counts(out, "regions", entry->regions, samples);
    text_append(out, ", ");
    append_counts(out, "bytes", entry->bytes, samples);
    /* Regions the hooks ended untouched are in the marker's count only: 0 bytes each. */
    uint64_t sizes[SERIES_SIZE_BUCKETS];
    uint64_t seen = __atomic_load_n(&entry->regions_seen, __ATOMIC_ACQUIRE);
    unsigned used = 1;
    for (unsigned b = 0; b < SERIES_SIZE_BUCKETS; b++) {
        sizes[b] = load(&entry->sizes[b]);
        if (sizes[b])
            used = b + 1;
    }
    const struct marker_counters *counters = marker_counters_of(entry->marker);
    uint64_t regions = counters ? load(&counters->regions) : seen;
    sizes[0] += regions > seen ? regions - seen : 0;
    text_append(out, ", ");
    append_counts(out, "region_sizes", sizes, used);
    text_append(out, "}");
}

static void append_scans(struct text *out)
{
    text_append(out, "\"scans_every\": %llu, \"scan_records\": [", (unsigned long long)series.scan_every);
    for (unsigned i = 0; i < series.scan_records; i++) {
        const struct scan_record *r = &series.storage->scan_records[i];
        text_append(out, "%s{\"start_s\": %.6f, \"concurrent_ns\": %llu, \"pause_ns\": %llu, \"bytes\": %llu, "
                    "\"quarantine_before\": %llu, \"quarantine_after\": %llu, \"chunks_released\": %llu}",
                    i ? ", " : "", (double)r->start_ns / 1e9, (unsigned long long)r->concurrent_ns,
                    (unsigned long long)r->pause_ns, (unsigned long long)r->bytes,
                    (unsigned long long)r->quarantine_before, (unsigned long long)r->quarantine_after,
                    (unsigned long long)r->chunks_released);
    }
    text_append(out, "]");
}

void timeseries_append_json(struct text *out)
{
    if (series.storage == NULL || !lock_bounded())
        return;
    const struct series_storage *s = series.storage;
    unsigned samples = series.samples;
    text_append(out, "\"timeseries\": {\"interval_s\": %.6f, \"thinned\": %u, \"samples_max\": %u, "
                "\"markers_max\": %u, \"scans_max\": %u, ", (double)series.interval_ns / 1e9, series.thinned,
                SERIES_SAMPLES_MAX, SERIES_MARKERS_MAX, SERIES_SCANS_MAX);
    append_seconds(out, "t", s->t_ns, samples);
    append_counts(out, "rss_bytes", s->rss_bytes, samples);
    text_append(out, ", ");
    append_counts(out, "quarantine_bytes", s->quarantine_bytes, samples);
    text_append(out, ", ");
    append_counts(out, "scans", s->scans, samples);
    text_append(out, ", ");
    append_counts(out, "scan_pause_ns", s->scan_pause_ns, samples);
    text_append(out, ", \"markers\": [");
    for (unsigned m = 0; m < series.marker_count; m++) {
        if (m)
            text_append(out, ", ");
        append_marker(out, &s->markers[m], samples);
    }
    /* Markers with regions that got no series of their own (all entries taken). */
    unsigned without = 0;
    for (unsigned i = 0; i < core_config.marker_count; i++)
        if (load(&core_config.markers[i].regions) != 0 && find_marker((int32_t)i) == NULL)
            without++;
    text_append(out, "], \"markers_without_series\": %u, ", without);
    append_scans(out);
    text_append(out, "}, ");
    spin_lock_release(&series.lock);
}

void timeseries_lock(void)
{
    spin_lock_acquire(&series.lock);
}

void timeseries_unlock(void)
{
    spin_lock_release(&series.lock);
}
