/*
 * test_proc.c — the /proc readers of preload/lib/proc.c: present-page runs over ranges that
 * start and end inside a page (a stack from its stack pointer, a chunk up to its cursor).
 */
#include "check.h"

#include <pthread.h>

#include "proc.h"

struct runs {
    unsigned count;
    uintptr_t start[8], end[8];
};

static void note_run(uintptr_t start, uintptr_t end, void *data)
{
    struct runs *runs = data;
    if (runs->count < 8) {
        runs->start[runs->count] = start;
        runs->end[runs->count] = end;
    }
    runs->count++;
}

static void check_runs(void (*walk)(uintptr_t, uintptr_t, void (*)(uintptr_t, uintptr_t, void *), void *),
                       const char *what)
{
    char *area = mmap(NULL, 8 * PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(area != MAP_FAILED);
    /* Pages 1, 2 and 5 present. */
    area[1 * PAGE_SIZE_BYTES] = 1;
    area[2 * PAGE_SIZE_BYTES] = 1;
    area[5 * PAGE_SIZE_BYTES] = 1;
    uintptr_t base = (uintptr_t)area;
    struct runs runs = { 0 };
    /* From inside page 1 to inside page 5. */
    walk(base + PAGE_SIZE_BYTES + 100, base + 5 * PAGE_SIZE_BYTES + 40, note_run, &runs);
    CHECK_MSG(runs.count == 2, "%s: %u runs", what, runs.count);
    CHECK_MSG(runs.start[0] == base + PAGE_SIZE_BYTES + 100 && runs.end[0] == base + 3 * PAGE_SIZE_BYTES,
              "%s: first run [%#lx, %#lx)", what, (unsigned long)(runs.start[0] - base),
              (unsigned long)(runs.end[0] - base));
    CHECK_MSG(runs.start[1] == base + 5 * PAGE_SIZE_BYTES && runs.end[1] == base + 5 * PAGE_SIZE_BYTES + 40,
              "%s: second run [%#lx, %#lx)", what, (unsigned long)(runs.start[1] - base),
              (unsigned long)(runs.end[1] - base));
    /* Less than a page, inside one present page. */
    memset(&runs, 0, sizeof runs);
    walk(base + 2 * PAGE_SIZE_BYTES + 8, base + 2 * PAGE_SIZE_BYTES + 64, note_run, &runs);
    CHECK_MSG(runs.count == 1 && runs.start[0] == base + 2 * PAGE_SIZE_BYTES + 8 &&
                  runs.end[0] == base + 2 * PAGE_SIZE_BYTES + 64, "%s: a piece of one page", what);
    munmap(area, 8 * PAGE_SIZE_BYTES);
}

static void walk_mincore(uintptr_t start, uintptr_t end, void (*visit)(uintptr_t, uintptr_t, void *), void *data)
{
    mincore_for_each_present_run(start, end, visit, data);
}

static int pagemap_fd;
static void walk_pagemap(uintptr_t start, uintptr_t end, void (*visit)(uintptr_t, uintptr_t, void *), void *data)
{
    pagemap_for_each_present_run(pagemap_fd, start, end, visit, data);
}

static void test_present_runs_inside_pages(void)
{
    check_runs(walk_mincore, "mincore");
    pagemap_fd = open("/proc/self/pagemap", O_RDONLY);
    REQUIRE(pagemap_fd >= 0);
    check_runs(walk_pagemap, "pagemap");
    close(pagemap_fd);
}

/* arenashim reads /proc under its own locks (the time series samples the resident set):
 * a read that is a cancellation point would unwind a cancelled thread with the lock held. */
static int cancel_sent, read_returned;

static void *read_with_a_cancel_pending(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&cancel_sent, __ATOMIC_SEQ_CST))
        ; /* no cancellation point until the read */
    char buffer[128];
    bool read = proc_read_file("/proc/self/statm", buffer, sizeof buffer);
    __atomic_store_n(&read_returned, read ? 1 : 2, __ATOMIC_SEQ_CST);
    pthread_testcancel();
    return NULL;
}

static void test_reading_is_no_cancellation_point(void)
{
    pthread_t reader;
    REQUIRE(pthread_create(&reader, NULL, read_with_a_cancel_pending, NULL) == 0);
    REQUIRE(pthread_cancel(reader) == 0);
    __atomic_store_n(&cancel_sent, 1, __ATOMIC_SEQ_CST);
    void *result;
    REQUIRE(pthread_join(reader, &result) == 0);
    CHECK(result == PTHREAD_CANCELED);
    CHECK_MSG(__atomic_load_n(&read_returned, __ATOMIC_SEQ_CST) == 1,
              "proc_read_file was a cancellation point (returned: %d)", read_returned);
}

static const struct test_case cases[] = {
    TEST_CASE(present_runs_inside_pages),
    TEST_CASE(reading_is_no_cancellation_point),
};

int main(int argc, char **argv)
{
    return check_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
