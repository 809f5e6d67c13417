/*
 * test_fork.c — fork: core_lock_all before, core_fork_child in the child, core_unlock_all in
 * the parent.  The child can open regions and allocate, also when other threads were busy
 * in the core (holding its locks) at the moment of the fork.
 */
#include <pthread.h>

#include "check.h"

/* Forks the way the preload's pthread_atfork handlers do; returns fork's result. */
static pid_t core_fork(struct thread_state *survivor)
{
    core_lock_all();
    pid_t pid = fork();
    if (pid == 0)
        core_fork_child(survivor);
    else
        core_unlock_all();
    return pid;
}

/* Waits for the child; true when it exited with status 0. */
static bool child_ok(pid_t pid)
{
    int status;
    REQUIRE(pid > 0);
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return false;
    }
    if (WIFSIGNALED(status))
        fprintf(stderr, "child killed by signal %d%s\n", WTERMSIG(status),
                WTERMSIG(status) == SIGALRM ? " (deadlocked?)" : "");
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* A worker parked in an open region while the main thread forks. */
static pthread_mutex_t park_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cond = PTHREAD_COND_INITIALIZER;
static int park_state; /* 1: in its region, 2: may go on */
static struct thread_state *parked_thread;
static char *parked_object;

static void *parked_worker(void *arg)
{
    (void)arg;
    struct thread_state *t = thread_state_create(gettid());
    region_begin(t, MARKER_API, 0);
    parked_object = region_alloc(t->innermost, 256);
    memset(parked_object, 0x6b, 256);
    pthread_mutex_lock(&park_lock);
    parked_thread = t;
    park_state = 1;
    pthread_cond_broadcast(&park_cond);
    while (park_state != 2)
        pthread_cond_wait(&park_cond, &park_lock);
    pthread_mutex_unlock(&park_lock);
    region_end(t, 0);
    thread_state_exit(t);
    return NULL;
}

static void child_work(struct thread_state *t)
{
    alarm(10);
    /* New regions and allocations work: chunks, dead ranges, region records. */
    for (int i = 0; i < 20; i++) {
        CHECK(region_begin(t, MARKER_API, 0) >= 1);
        char *p = region_alloc(t->innermost, 100 + (size_t)i * 300);
        REQUIRE(p != NULL);
        memset(p, 0x11, 100 + (size_t)i * 300);
        char *span = region_alloc(t->innermost, core_config.chunk_size);
        REQUIRE(span != NULL);
        span[core_config.chunk_size - 1] = 1;
        region_end(t, 0);
        CHECK(!probe_read(p));
        CHECK(!probe_read(span));
        struct dangling_info info;
        CHECK(dangling_lookup((uintptr_t)p, &info) && info.found_range);
    }
    struct region *a = arena_create(0);
    CHECK(arena_alloc(a, 64, 64) != NULL);
    arena_destroy(a, t, 0);
    /* New thread records too. */
    struct thread_state *other = thread_state_create(12345);
    REQUIRE(other != NULL);
    region_begin(other, MARKER_API, 0);
    CHECK(region_alloc(other->innermost, 10) != NULL);
    region_end(other, 0);
    thread_state_exit(other);
    /* The statistics snapshot takes the thread list's lock, which fork left whole. */
    struct core_counters c = test_stats();
    CHECK(c.retired.regions_begun >= c.retired.regions_ended && c.retired.regions_ended > 0);
}

static void test_child_allocates(void)
{
    test_setup("");
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    char *mine = region_alloc(t->innermost, 128);
    memset(mine, 0x5d, 128);
    pthread_t worker;
    pthread_create(&worker, NULL, parked_worker, NULL);
    pthread_mutex_lock(&park_lock);
    while (park_state != 1)
        pthread_cond_wait(&park_cond, &park_lock);
    pthread_mutex_unlock(&park_lock);

    pid_t pid = core_fork(t);
    if (pid == 0) {
        /* The child: the forking thread's open region is still there and usable. */
        CHECK(all_bytes_are(mine, 128, 0x5d));
        CHECK(t->innermost != NULL);
        char *more = region_alloc(t->innermost, 64);
        CHECK(more != NULL && more > mine);
        /* The parked thread does not exist here: no longer counted as alive; its region's
         * memory stays readable for the child. */
        CHECK(!parked_thread->alive);
        CHECK(all_bytes_are(parked_object, 256, 0x6b));
        region_end(t, 0);
        CHECK(!probe_read(mine));
        child_work(t);
        exit(check_failures ? 1 : 0);
    }
    CHECK(child_ok(pid));
    /* The parent goes on as before; the parked thread is alive and unaffected. */
    CHECK(parked_thread->alive);
    CHECK(all_bytes_are(mine, 128, 0x5d));
    CHECK(region_alloc(t->innermost, 64) != NULL);
    region_end(t, 0);
    CHECK(!probe_read(mine));
    pthread_mutex_lock(&park_lock);
    park_state = 2;
    pthread_cond_broadcast(&park_cond);
    pthread_mutex_unlock(&park_lock);
    pthread_join(worker, NULL);
    CHECK(!probe_read(parked_object));
    struct core_counters c = test_stats();
    CHECK_EQ(c.retired.regions_begun, 2);
    CHECK_EQ(c.retired.regions_ended, 2);
}

/* Workers that keep every lock of the core busy while the main thread forks. */
static volatile int stop;

static void *busy_worker(void *arg)
{
    unsigned index = (unsigned)(uintptr_t)arg;
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        struct thread_state *t = thread_state_create(gettid()); /* thread pool, threads_lock */
        for (int i = 0; i < 10; i++) {
            region_begin(t, MARKER_API, 0); /* region pool */
            for (int k = 0; k < 30; k++)
                region_alloc(t->innermost, 1000 + index * 100 + (size_t)k * 50); /* core.lock */
            if (i % 3 == 0)
                region_alloc(t->innermost, core_config.chunk_size / 2); /* spans */
            region_end(t, 0); /* dead ranges, quarantine */
        }
        struct region *a = arena_create(0);
        arena_alloc(a, 5000, 0);
        arena_destroy(a, NULL, 0);
        thread_state_exit(t); /* threads_lock */
    }
    return NULL;
}

static void test_fork_while_busy(void)
{
    test_setup("");
    struct thread_state *t = test_thread();
    pthread_t workers[2];
    for (unsigned i = 0; i < 2; i++)
        pthread_create(&workers[i], NULL, busy_worker, (void *)(uintptr_t)i);
    usleep(2000);
    for (int round = 0; round < 15; round++) {
        pid_t pid = core_fork(t);
        if (pid == 0) {
            child_work(t);
            exit(check_failures ? 1 : 0);
        }
        CHECK_MSG(child_ok(pid), "fork round %d: the child failed", round);
        usleep(1000);
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    for (unsigned i = 0; i < 2; i++)
        pthread_join(workers[i], NULL);
    /* The parent is consistent after all of it. */
    region_begin(t, MARKER_API, 0);
    CHECK(region_alloc(t->innermost, 100) != NULL);
    region_end(t, 0);
    struct core_counters c = test_stats();
    CHECK_EQ(c.retired.regions_begun, c.retired.regions_ended);
}

static const struct test_case cases[] = {
    TEST_CASE(child_allocates),
    TEST_CASE(fork_while_busy),
};

int main(int argc, char **argv)
{
    return check_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
