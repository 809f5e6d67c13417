/*
 * test_metadata.c — arenashim's own memory (core/metadata.c).
 *
 * What the file's header and core.h promise: metadata_map hands out zeroed, page-aligned,
 * writable memory that never overlaps, carved from large reserved areas made accessible a step
 * at a time (the rest of an area stays PROT_NONE, costing nothing); every piece lies in a range
 * of metadata_ranges (the scan's skip list), which stays a handful of ranges however much is
 * mapped, and a full area is followed by another (under an address-space limit, where areas
 * are small).  metadata_register adds a range.  Fixed-size pools hand out zeroed, 16-byte
 * aligned, disjoint objects (objects larger than a 64 KiB block get a block each) and reuse
 * freed ones; metadata_alloc serves power-of-two classes from 64 bytes to 64 GiB, zeroed,
 * reusing a freed object for any size of its class, NULL past the largest class.  Pools work
 * from many threads at once (TSan build), and lock_pools/unlock_pools and metadata_fork_child
 * leave them usable.
 */
#include "check.h"

#include <pthread.h>
#include <sys/resource.h>

static bool in_ranges(const void *p, size_t bytes)
{
    static uintptr_t ranges[METADATA_RANGES_MAX][2];
    unsigned count = metadata_ranges(ranges, METADATA_RANGES_MAX);
    uintptr_t start = (uintptr_t)p, end = start + bytes;
    for (unsigned i = 0; i < count; i++)
        if (start >= ranges[i][0] && end <= ranges[i][1])
            return true;
    return false;
}

static unsigned range_count(void)
{
    static uintptr_t ranges[METADATA_RANGES_MAX][2];
    return metadata_ranges(ranges, METADATA_RANGES_MAX);
}

static void test_map_is_zeroed_aligned_disjoint_and_skipped(void)
{
    test_setup("");
    static char *pieces[64];
    static size_t sizes[64];
    for (int i = 0; i < 64; i++) {
        sizes[i] = 1 + (size_t)i * 1500;
        pieces[i] = metadata_map(sizes[i]);
        REQUIRE(pieces[i] != NULL);
        CHECK_EQ((uintptr_t)pieces[i] % PAGE_SIZE_BYTES, 0);
        CHECK(all_bytes_are(pieces[i], sizes[i], 0));
        memset(pieces[i], 0xa5, sizes[i]);
        CHECK(in_ranges(pieces[i], sizes[i]));
    }
    /* Whole pages each: no two pieces share one. */
    for (int i = 0; i < 64; i++)
        for (int j = i + 1; j < 64; j++) {
            uintptr_t a = (uintptr_t)pieces[i], b = (uintptr_t)pieces[j];
            uintptr_t a_end = align_up(a + sizes[i], PAGE_SIZE_BYTES), b_end = align_up(b + sizes[j], PAGE_SIZE_BYTES);
            CHECK_MSG(a_end <= b || b_end <= a, "pieces %d and %d overlap", i, j);
        }
    for (int i = 0; i < 64; i++)
        CHECK(all_bytes_are(pieces[i], sizes[i], 0xa5));
}

static void test_skip_list_stays_short(void)
{
    test_setup("");
    unsigned before = range_count();
    CHECK(before >= 1);
    /* 200 MiB in 3200 pieces: carved from the same area, no new range. */
    for (int i = 0; i < 3200; i++) {
        char *p = metadata_map((size_t)64 << 10);
        REQUIRE(p != NULL);
        p[0] = 1;
        p[(64 << 10) - 1] = 1;
        if (!in_ranges(p, (size_t)64 << 10)) {
            CHECK_MSG(false, "piece %d at %p is not in the skip list", i, (void *)p);
            break;
        }
    }
    CHECK_EQ(range_count(), before);
}

static void test_area_beyond_the_cursor_is_not_accessible(void)
{
    test_setup("");
    char *p = metadata_map(PAGE_SIZE_BYTES);
    REQUIRE(p != NULL);
    /* The area is made accessible a 1 MiB step at a time: past the step that holds p, the
     * reservation is still PROT_NONE (and part of the same registered range). */
    char *beyond = (char *)align_up((uintptr_t)p + PAGE_SIZE_BYTES, (size_t)1 << 20) + ((size_t)4 << 20);
    char perms[8];
    CHECK(strcmp(maps_perms(beyond, perms), "---p") == 0);
    CHECK(in_ranges(beyond, PAGE_SIZE_BYTES));
    CHECK(!probe_read(beyond));
    /* Mapping up to there makes it accessible, zeroed. */
    char *q;
    do {
        q = metadata_map((size_t)1 << 20);
        REQUIRE(q != NULL);
    } while (q + (1 << 20) <= beyond);
    CHECK(probe_write(beyond));
    CHECK_EQ(*beyond, 0);
}

static void test_register_adds_a_range(void)
{
    test_setup("");
    static char own_data[3 * 4096];
    CHECK(!in_ranges(own_data, sizeof own_data));
    unsigned before = range_count();
    metadata_register(own_data, sizeof own_data);
    CHECK_EQ(range_count(), before + 1);
    CHECK(in_ranges(own_data, sizeof own_data));
    CHECK(!in_ranges(own_data, sizeof own_data + 1));
    /* A short buffer gets the first ranges only. */
    uintptr_t one[1][2];
    CHECK_EQ(metadata_ranges(one, 1), 1);
}

struct small { uint64_t a, b, c; };          /* 24 bytes */
struct large { unsigned char bytes[100000]; }; /* larger than a 64 KiB block */

static struct fixed_pool small_pool = FIXED_POOL_INIT(struct small);
static struct fixed_pool large_pool = FIXED_POOL_INIT(struct large);

static int compare_pointers(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static void test_fixed_pool_objects(void)
{
    test_setup("");
    /* Enough small objects to fill several blocks. */
    enum { N = 10000 };
    static uintptr_t objects[N];
    for (int i = 0; i < N; i++) {
        struct small *s = fixed_pool_alloc(&small_pool);
        REQUIRE(s != NULL);
        CHECK_EQ((uintptr_t)s % 16, 0);
        CHECK(s->a == 0 && s->b == 0 && s->c == 0);
        s->a = s->b = s->c = (uint64_t)i;
        objects[i] = (uintptr_t)s;
        CHECK(in_ranges(s, sizeof *s));
    }
    qsort(objects, N, sizeof objects[0], compare_pointers);
    for (int i = 1; i < N; i++)
        CHECK_MSG(objects[i] - objects[i - 1] >= sizeof(struct small), "objects %d and %d overlap", i - 1, i);
    /* Freed objects come back (last freed first), zeroed. */
    struct small *x = (struct small *)objects[10], *y = (struct small *)objects[20];
    fixed_pool_free(&small_pool, x);
    fixed_pool_free(&small_pool, y);
    struct small *first = fixed_pool_alloc(&small_pool), *second = fixed_pool_alloc(&small_pool);
    CHECK(first == y && second == x);
    CHECK(first->a == 0 && first->b == 0 && first->c == 0);
    CHECK(second->a == 0 && second->b == 0 && second->c == 0);
    /* Objects larger than a block: each whole, disjoint, zeroed. */
    struct large *l1 = fixed_pool_alloc(&large_pool), *l2 = fixed_pool_alloc(&large_pool);
    REQUIRE(l1 != NULL && l2 != NULL);
    CHECK((uintptr_t)l1 + sizeof *l1 <= (uintptr_t)l2 || (uintptr_t)l2 + sizeof *l2 <= (uintptr_t)l1);
    CHECK(all_bytes_are(l1, sizeof *l1, 0) && all_bytes_are(l2, sizeof *l2, 0));
    memset(l1, 1, sizeof *l1);
    memset(l2, 2, sizeof *l2);
    CHECK(all_bytes_are(l1, sizeof *l1, 1) && all_bytes_are(l2, sizeof *l2, 2));
    fixed_pool_free(&large_pool, l1);
    struct large *l3 = fixed_pool_alloc(&large_pool);
    CHECK(l3 == l1);
    CHECK(all_bytes_are(l3, sizeof *l3, 0));
}

static void test_alloc_size_classes(void)
{
    test_setup("");
    /* Every size up to the class is served zeroed from its class. */
    char *tiny = metadata_alloc(1);
    REQUIRE(tiny != NULL);
    CHECK(all_bytes_are(tiny, 64, 0));
    memset(tiny, 9, 64);
    metadata_free(tiny, 1);
    char *again = metadata_alloc(64); /* 1 and 64 share the smallest class */
    CHECK(again == tiny);
    CHECK(all_bytes_are(again, 64, 0));
    char *next_class = metadata_alloc(65);
    REQUIRE(next_class != NULL);
    CHECK(next_class != tiny);
    CHECK(all_bytes_are(next_class, 128, 0));
    metadata_free(next_class, 65);
    /* A freed object is not handed out for a size of another class... */
    char *other = metadata_alloc(64);
    CHECK(other != next_class);
    /* ...but for any size of its own. */
    CHECK(metadata_alloc(128) == next_class);
    /* Objects of a class are disjoint and aligned to 16 at least. */
    char *a = metadata_alloc(1000), *b = metadata_alloc(1000);
    REQUIRE(a != NULL && b != NULL);
    CHECK(a + 1024 <= b || b + 1024 <= a);
    CHECK_EQ((uintptr_t)a % 16, 0);
    /* Past the largest class (64 GiB): NULL; freeing NULL or such a size does nothing. */
    CHECK(metadata_alloc(((size_t)64 << 30) + 1) == NULL);
    metadata_free(NULL, 100);
    metadata_free(a, ((size_t)64 << 30) + 1); /* no class: ignored */
    CHECK(metadata_alloc(1000) != a);
}

static volatile int churn_done;

/* Takes the area's and the registry's locks without pause until told to stop: the main
 * thread forks meanwhile. */
static void *churn(void *arg)
{
    (void)arg;
    static char dummy[64];
    while (!__atomic_load_n(&churn_done, __ATOMIC_ACQUIRE)) {
        metadata_map(0);                        /* the area's lock, consuming nothing */
        metadata_register(dummy, sizeof dummy); /* past 1024 ranges: only the lock */
    }
    return NULL;
}

static void test_lock_pools_and_fork_child(void)
{
    test_setup("");
    char *p = metadata_alloc(200);
    REQUIRE(p != NULL);
    metadata_lock_pools(); /* as before fork */
    metadata_unlock_pools();
    metadata_free(p, 200);
    CHECK(metadata_alloc(200) == p);
    /* Children forked while another thread holds the area's or the registry's lock map and
     * register after metadata_fork_child (the pools' locks are taken around fork instead). */
    pthread_t thread;
    REQUIRE(pthread_create(&thread, NULL, churn, NULL) == 0);
    int forks = 0, failed = 0;
    while (forks < 100) {
        metadata_lock_pools();
        pid_t pid = fork();
        metadata_unlock_pools();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            alarm(2);
            metadata_fork_child();
            char *q = metadata_map(PAGE_SIZE_BYTES);
            metadata_register(q, 1);
            _exit(q != NULL && in_ranges(q, PAGE_SIZE_BYTES) && metadata_alloc(300) != NULL ? 0 : 1);
        }
        int status;
        REQUIRE(waitpid(pid, &status, 0) == pid);
        forks++;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            failed++;
            break; /* one is enough (a hung child costs its alarm) */
        }
    }
    __atomic_store_n(&churn_done, 1, __ATOMIC_RELEASE);
    pthread_join(thread, NULL);
    CHECK(forks > 0);
    if (getenv("TEST_VERBOSE"))
        printf("%d forks\n", forks);
    CHECK_MSG(failed == 0, "a child forked while the other thread mapped could not map (hung or failed)");
}

/* The sanitizers' runtimes map more as they go: an address-space limit would stop them,
 * not the code under test. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LIMIT_TESTS_RUN 0
#else
#define LIMIT_TESTS_RUN 1
#endif

static void test_full_area_is_followed_by_another(void)
{
    if (!LIMIT_TESTS_RUN)
        return;
    /* ulimit -v at what is mapped now + 2 GiB: the first metadata area is a 32nd of what is
     * left after the chunk reservation (tens of MiB), so 160 MiB of metadata fill it and
     * open another, which joins the skip list. */
    struct rlimit limit;
    size_t now = 0;
    FILE *statm = fopen("/proc/self/statm", "r");
    REQUIRE(statm != NULL && fscanf(statm, "%zu", &now) == 1);
    fclose(statm);
    limit.rlim_cur = limit.rlim_max = now * 4096 + ((size_t)2 << 30);
    REQUIRE(setrlimit(RLIMIT_AS, &limit) == 0);
    test_setup("");
    REQUIRE(!core_config.heap_only);
    unsigned before = range_count();
    for (int i = 0; i < 160; i++) {
        char *p = metadata_map((size_t)1 << 20);
        REQUIRE(p != NULL);
        p[0] = p[(1 << 20) - 1] = 1;
        CHECK(in_ranges(p, (size_t)1 << 20));
    }
    CHECK(range_count() > before);
    CHECK(range_count() <= before + 8);
}

/* --- threads ------------------------------------------------------------------------------- */

#define THREADS 4
#define ROUNDS 20000

static struct fixed_pool shared_pool = FIXED_POOL_INIT(struct small);

/* Each thread keeps 32 objects of a shared fixed pool, freeing and taking one a round: an
 * object it holds must be zeroed when handed out and keep what the thread wrote. */
static void *fixed_pool_worker(void *arg)
{
    uint64_t t = (uint64_t)(uintptr_t)arg + 1;
    struct small *live[32] = { 0 };
    int bad = 0;
    for (unsigned r = 0; r < ROUNDS; r++) {
        unsigned slot = r % 32;
        if (live[slot]) {
            bad += live[slot]->a != t || live[slot]->b != slot; /* nobody else wrote it */
            fixed_pool_free(&shared_pool, live[slot]);
        }
        live[slot] = fixed_pool_alloc(&shared_pool);
        if (live[slot] == NULL)
            return (void *)1;
        bad += live[slot]->a != 0 || live[slot]->b != 0;
        live[slot]->a = t;
        live[slot]->b = slot;
    }
    return (void *)(uintptr_t)(bad != 0);
}

/* The same with metadata_alloc, 8 objects of 8 sizes (two classes). */
static void *size_class_worker(void *arg)
{
    uint64_t t = (uint64_t)(uintptr_t)arg + 1;
    uint64_t *sized[8] = { 0 };
    int bad = 0;
    for (unsigned r = 0; r < ROUNDS; r++) {
        unsigned s = r % 8;
        if (sized[s]) {
            bad += sized[s][0] != t;
            metadata_free(sized[s], 100 + s * 10);
        }
        sized[s] = metadata_alloc(100 + s * 10);
        if (sized[s] == NULL)
            return (void *)1;
        bad += sized[s][0] != 0;
        sized[s][0] = t;
    }
    return (void *)(uintptr_t)(bad != 0);
}

static void run_threads(void *(*worker)(void *))
{
    test_setup("");
    pthread_t threads[THREADS];
    for (unsigned t = 0; t < THREADS; t++)
        REQUIRE(pthread_create(&threads[t], NULL, worker, (void *)(uintptr_t)t) == 0);
    for (unsigned t = 0; t < THREADS; t++) {
        void *result;
        pthread_join(threads[t], &result);
        CHECK_MSG(result == NULL, "thread %u saw an object handed out twice, or not zeroed", t);
    }
}

static void test_fixed_pool_from_threads(void)
{
    run_threads(fixed_pool_worker);
}

static void test_size_classes_from_threads(void)
{
    /* metadata_alloc runs on any thread (trace_log's index at a traced region's end,
     * discover's records). */
    run_threads(size_class_worker);
}

static const struct test_case cases[] = {
    TEST_CASE(map_is_zeroed_aligned_disjoint_and_skipped),
    TEST_CASE(skip_list_stays_short),
    TEST_CASE(area_beyond_the_cursor_is_not_accessible),
    TEST_CASE(register_adds_a_range),
    TEST_CASE(fixed_pool_objects),
    TEST_CASE(alloc_size_classes),
    TEST_CASE(lock_pools_and_fork_child),
    TEST_CASE(full_area_is_followed_by_another),
    TEST_CASE(fixed_pool_from_threads),
    TEST_CASE(size_classes_from_threads),
};

int main(int argc, char **argv)
{
    return check_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
