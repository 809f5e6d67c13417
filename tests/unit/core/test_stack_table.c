/*
 * test_stack_table.c — deduplicated backtraces named by small ids (core/stack_table.c).
 *
 * What core.h and the file's header promise: a stack of depth 0 has no id (0); the same
 * stack always gets the same id and a different one (another frame, another depth) a
 * different id; ids are indexes + 1, handed out in order and never reused; a record keeps the
 * frames, the depth (at most STACK_DEPTH_MAX, deeper stacks are cut) and the marker of the
 * first intern; stack_table_get answers NULL for 0 and for ids not handed out; when the table
 * is full (65536 stacks) new stacks get 0 while known ones keep their ids; interning is safe
 * from many threads at once (TSan build), and a fork child can intern although another thread
 * of the parent held the table's lock at the fork (stack_table_fork_child).
 */
#include "check.h"

#include <pthread.h>

#define CAPACITY 65536

/* A stack that differs from every other (seed, i) pair in its frames. */
static void make_stack(uintptr_t *pcs, unsigned depth, uint32_t seed)
{
    for (unsigned i = 0; i < depth; i++)
        pcs[i] = 0x555500000000ull + (uintptr_t)seed * 0x1000 + i * 8 + 1;
}

static void test_depth_zero_has_no_id(void)
{
    test_setup("");
    uintptr_t pcs[1] = { 0x1234 };
    CHECK_EQ(stack_table_intern(pcs, 0, 0), 0);
    CHECK(stack_table_get(0) == NULL);
    CHECK_EQ(stack_table_count(), 0);
}

static void test_same_stack_same_id(void)
{
    test_setup("");
    uintptr_t a[6], b[6];
    make_stack(a, 6, 1);
    make_stack(b, 6, 1); /* another array, the same frames */
    uint32_t id = stack_table_intern(a, 6, MARKER_API);
    CHECK_NE(id, 0);
    CHECK_EQ(stack_table_intern(b, 6, MARKER_API), id);
    CHECK_EQ(stack_table_intern(a, 6, MARKER_API), id);
    CHECK_EQ(stack_table_count(), 1);
}

static void test_different_stacks_different_ids(void)
{
    test_setup("");
    uintptr_t a[8], b[8];
    make_stack(a, 8, 2);
    memcpy(b, a, sizeof a);
    b[7] ^= 0x10; /* the outermost frame differs */
    uint32_t full = stack_table_intern(a, 8, 0);
    uint32_t other = stack_table_intern(b, 8, 0);
    uint32_t prefix = stack_table_intern(a, 7, 0); /* the same frames, one fewer */
    uint32_t single = stack_table_intern(a, 1, 0);
    CHECK(full != 0 && other != 0 && prefix != 0 && single != 0);
    CHECK(full != other && full != prefix && full != single && other != prefix && prefix != single);
    CHECK_EQ(stack_table_count(), 4);
    /* Each is found again. */
    CHECK_EQ(stack_table_intern(b, 8, 0), other);
    CHECK_EQ(stack_table_intern(a, 7, 0), prefix);
    CHECK_EQ(stack_table_intern(a, 1, 0), single);
}

static void test_record_keeps_frames_depth_and_first_marker(void)
{
    test_setup("");
    uintptr_t pcs[5];
    make_stack(pcs, 5, 3);
    uint32_t id = stack_table_intern(pcs, 5, 7);
    struct stack_record *r = stack_table_get(id);
    REQUIRE(r != NULL);
    CHECK_EQ(r->depth, 5);
    CHECK_EQ(r->marker, 7);
    CHECK_NE(r->hash, 0);
    for (unsigned i = 0; i < 5; i++)
        CHECK_EQ(r->pcs[i], pcs[i]);
    CHECK_EQ(r->escapes, 0);
    CHECK_EQ(r->allocations, 0);
    /* The same stack seen again from a region of another marker: the same site, and the
     * record keeps the marker of the region the first allocation was in. */
    CHECK_EQ(stack_table_intern(pcs, 5, MARKER_ARENA), id);
    CHECK_EQ(stack_table_get(id)->marker, 7);
    /* The caller's array is copied, not referenced. */
    pcs[0] = 0;
    CHECK_EQ(stack_table_get(id)->pcs[0], 0x555500000000ull + 3 * 0x1000 + 1);
}

static void test_deep_stacks_are_cut(void)
{
    test_setup("");
    uintptr_t pcs[STACK_DEPTH_MAX + 8];
    make_stack(pcs, STACK_DEPTH_MAX + 8, 4);
    uint32_t id = stack_table_intern(pcs, STACK_DEPTH_MAX + 8, 0);
    REQUIRE(id != 0);
    CHECK_EQ(stack_table_get(id)->depth, STACK_DEPTH_MAX);
    /* Only the first STACK_DEPTH_MAX frames count: the same id for the cut stack, and for a
     * deeper one that differs only below the cut. */
    CHECK_EQ(stack_table_intern(pcs, STACK_DEPTH_MAX, 0), id);
    pcs[STACK_DEPTH_MAX + 3] ^= 0x40;
    CHECK_EQ(stack_table_intern(pcs, STACK_DEPTH_MAX + 4, 0), id);
    CHECK_EQ(stack_table_count(), 1);
}

static void test_ids_are_dense_and_unknown_ids_are_null(void)
{
    test_setup("");
    uintptr_t pcs[4];
    for (uint32_t i = 0; i < 100; i++) {
        make_stack(pcs, 4, 100 + i);
        CHECK_EQ(stack_table_intern(pcs, 4, 0), i + 1); /* indexes + 1, in order */
    }
    CHECK_EQ(stack_table_count(), 100);
    CHECK(stack_table_get(100) != NULL);
    CHECK(stack_table_get(101) == NULL);
    CHECK(stack_table_get(UINT32_MAX) == NULL);
    /* Every record still holds its own stack. */
    for (uint32_t i = 0; i < 100; i++) {
        make_stack(pcs, 4, 100 + i);
        const struct stack_record *r = stack_table_get(i + 1);
        REQUIRE(r != NULL);
        CHECK(r->depth == 4 && memcmp(r->pcs, pcs, sizeof pcs) == 0);
    }
}

static void test_full_table_gives_zero_and_keeps_known_ids(void)
{
    test_setup("");
    uintptr_t pcs[3];
    for (uint32_t i = 0; i < CAPACITY; i++) {
        make_stack(pcs, 3, i);
        uint32_t id = stack_table_intern(pcs, 3, 0);
        if (id != i + 1) {
            CHECK_MSG(false, "stack %u got id %u, expected %u", i, id, i + 1);
            return;
        }
    }
    CHECK_EQ(stack_table_count(), CAPACITY);
    /* Full: a new stack has no id (reports then say the site is unknown)... */
    make_stack(pcs, 3, CAPACITY);
    CHECK_EQ(stack_table_intern(pcs, 3, 0), 0);
    make_stack(pcs, 2, 0);
    CHECK_EQ(stack_table_intern(pcs, 2, 0), 0);
    CHECK_EQ(stack_table_count(), CAPACITY);
    /* ...and every known one keeps its id (the probe sequence finds them in a half-full hash). */
    for (uint32_t i = 0; i < CAPACITY; i += 97) {
        make_stack(pcs, 3, i);
        CHECK_EQ(stack_table_intern(pcs, 3, 0), i + 1);
    }
    make_stack(pcs, 3, CAPACITY - 1);
    CHECK_EQ(stack_table_intern(pcs, 3, 0), CAPACITY);
    CHECK(stack_table_get(CAPACITY) != NULL);
    CHECK(stack_table_get(CAPACITY + 1) == NULL);
}

/* --- threads ------------------------------------------------------------------------------- */

#define THREADS 4
#define SHARED_STACKS 2000

static uint32_t seen_ids[THREADS][SHARED_STACKS];

static void *intern_all(void *arg)
{
    unsigned t = (unsigned)(uintptr_t)arg;
    uintptr_t pcs[6];
    /* Every thread interns the same stacks, each starting at another place. */
    for (unsigned k = 0; k < SHARED_STACKS; k++) {
        unsigned i = (k + t * (SHARED_STACKS / THREADS)) % SHARED_STACKS;
        make_stack(pcs, 6, 5000 + i);
        seen_ids[t][i] = stack_table_intern(pcs, 6, (int32_t)t);
        const struct stack_record *r = stack_table_get(seen_ids[t][i]);
        if (r == NULL || r->depth != 6 || memcmp(r->pcs, pcs, sizeof pcs) != 0)
            seen_ids[t][i] = 0;
    }
    return NULL;
}

static volatile int writers_done;

/* A report on another thread: reads the newest record while the others intern (without the
 * table's lock, as stack_table_get promises it may); every record it sees must be whole. */
static void *read_newest(void *arg)
{
    (void)arg;
    uintptr_t torn = 0;
    while (!__atomic_load_n(&writers_done, __ATOMIC_ACQUIRE)) {
        uint32_t count = stack_table_count();
        const struct stack_record *r = stack_table_get(count);
        if (count != 0 && (r == NULL || r->depth != 6 || r->pcs[5] - r->pcs[0] != 5 * 8))
            torn++;
    }
    return (void *)torn;
}

static void test_threads_agree_on_ids(void)
{
    test_setup("");
    pthread_t threads[THREADS], reader;
    REQUIRE(pthread_create(&reader, NULL, read_newest, NULL) == 0);
    for (unsigned t = 0; t < THREADS; t++)
        REQUIRE(pthread_create(&threads[t], NULL, intern_all, (void *)(uintptr_t)t) == 0);
    for (unsigned t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);
    __atomic_store_n(&writers_done, 1, __ATOMIC_RELEASE);
    void *torn;
    pthread_join(reader, &torn);
    CHECK_MSG(torn == NULL, "the reader saw %lu records not yet written", (unsigned long)(uintptr_t)torn);
    CHECK_EQ(stack_table_count(), SHARED_STACKS);
    unsigned bad = 0;
    for (unsigned i = 0; i < SHARED_STACKS; i++)
        for (unsigned t = 0; t < THREADS; t++)
            bad += seen_ids[t][i] == 0 || seen_ids[t][i] != seen_ids[0][i];
    CHECK_EQ(bad, 0);
    /* Distinct stacks, distinct ids: every id 1..SHARED_STACKS once. */
    static unsigned char used[SHARED_STACKS + 1];
    for (unsigned i = 0; i < SHARED_STACKS; i++)
        if (seen_ids[0][i] >= 1 && seen_ids[0][i] <= SHARED_STACKS)
            used[seen_ids[0][i]]++;
    for (unsigned id = 1; id <= SHARED_STACKS; id++)
        CHECK_MSG(used[id] == 1, "id %u used %u times", id, used[id]);
}

static volatile int churn_stop;

static void *churn(void *arg)
{
    (void)arg;
    uintptr_t pcs[STACK_DEPTH_MAX];
    for (uint32_t i = 0; !__atomic_load_n(&churn_stop, __ATOMIC_RELAXED); i++) {
        make_stack(pcs, STACK_DEPTH_MAX, 20000 + i % 30000); /* new stacks, then known ones */
        stack_table_intern(pcs, STACK_DEPTH_MAX, 0);
    }
    return NULL;
}

static void test_fork_child_can_intern(void)
{
    /* A thread interns without pause while the main thread forks: a child whose fork caught
     * the thread inside the table's lock must still intern (the lock is reset in the child;
     * without that it would wait for a thread that does not exist there). */
    test_setup("");
    pthread_t thread;
    REQUIRE(pthread_create(&thread, NULL, churn, NULL) == 0);
    int hung = 0, failed = 0;
    for (int k = 0; k < 60; k++) {
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            alarm(2);
            stack_table_fork_child();
            uintptr_t pcs[4];
            make_stack(pcs, 4, 900000 + (uint32_t)k);
            uint32_t id = stack_table_intern(pcs, 4, 0);
            _exit(id != 0 && stack_table_get(id) != NULL && stack_table_intern(pcs, 4, 0) == id ? 0 : 1);
        }
        int status;
        REQUIRE(waitpid(pid, &status, 0) == pid);
        hung += WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM;
        failed += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
        if (failed)
            break; /* one is enough (a hung child costs its alarm) */
    }
    __atomic_store_n(&churn_stop, 1, __ATOMIC_RELAXED);
    pthread_join(thread, NULL);
    CHECK_EQ(hung, 0);
    CHECK_EQ(failed, 0);
}

static const struct test_case cases[] = {
    TEST_CASE(depth_zero_has_no_id),
    TEST_CASE(same_stack_same_id),
    TEST_CASE(different_stacks_different_ids),
    TEST_CASE(record_keeps_frames_depth_and_first_marker),
    TEST_CASE(deep_stacks_are_cut),
    TEST_CASE(ids_are_dense_and_unknown_ids_are_null),
    TEST_CASE(full_table_gives_zero_and_keeps_known_ids),
    TEST_CASE(threads_agree_on_ids),
    TEST_CASE(fork_child_can_intern),
};

int main(int argc, char **argv)
{
    return check_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
