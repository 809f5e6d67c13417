/*
 * write_tracking.c — which pages the program wrote while a scan read them.
 *
 * Layer: preload, collect.  The concurrent phase of a scan reads memory while the program runs;
 * whatever the program writes after a range was armed is read again with the world stopped.
 * Linux 6.7 gives exactly that, without signals and without a fault reaching user space: a
 * userfaultfd whose ranges are registered for write protection in asynchronous mode
 * (UFFD_FEATURE_WP_ASYNC: the kernel resolves a write to a protected page itself, and only
 * clears the page's protect bit), and the PAGEMAP_SCAN ioctl of /proc/self/pagemap, which
 * protects a range (arming) and lists the pages without the bit ("written").  Only pages that
 * exist (present or swapped) are protected and asked about: a page that appears after arming
 * has no bit, so it reads as written, and protecting holes (UFFD_FEATURE_WP_UNPOPULATED, or
 * PAGEMAP_SCAN over them) makes the kernel allocate page tables for every hole: 32 MiB for a
 * sparse 16 GiB mapping.  A kernel write (read() into a buffer) clears the
 * bit as a program write does; a discarded page (MADV_DONTNEED) reads as written, which only
 * costs a rescan.
 *
 * Lifecycle: probed once per process on the first scan (and again in a fork child, which must
 * not use its parent's userfaultfd or pagemap: both name the parent's memory).  A mapping is
 * registered the first time a scan arms it and stays registered; each scan arms it again
 * (protecting the pages written since), so between scans the program pays one protection
 * fault (about 0.8 µs here) for the first write to each page, and nothing else.  A range
 * that is unmapped, moved or mapped anew loses its registration, and PM_SCAN_CHECK_WPASYNC
 * makes the stop-phase query fail for it: it is then read whole.  Shared mappings are never
 * armed: another process writes them through its own page tables.
 *
 * The constants are the kernel's ABI, defined here for older headers (Debian 12 has 6.1's).
 */
#include "write_tracking.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#define FEATURE_WP_ASYNC ((uint64_t)1 << 15)

#define PAGE_IS_WRITTEN ((uint64_t)1 << 1)
#define PAGE_IS_PRESENT ((uint64_t)1 << 3)
#define PAGE_IS_SWAPPED ((uint64_t)1 << 4)
#define SCAN_WP_MATCHING ((uint64_t)1 << 0)
#define SCAN_CHECK_WPASYNC ((uint64_t)1 << 1)

struct page_region {
    uint64_t start, end, categories;
};

struct pagemap_scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
    uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};

#define PAGEMAP_SCAN_IOCTL _IOWR('f', 16, struct pagemap_scan_arg)

/* Runs per ioctl: a buffer on the caller's stack (several marking threads ask at once). */
#define RUNS_PER_CALL 256

static struct {
    int state; /* 0 not probed, 1 available, -1 not */
    int userfault_fd;
    int pagemap_fd;
    const char *reason;
} tracking = { .userfault_fd = -1, .pagemap_fd = -1 };

static long pagemap_scan(uintptr_t start, uintptr_t end, uint64_t flags, struct page_region *runs,
                         size_t run_count, uint64_t *walk_end)
{
    struct pagemap_scan_arg arg = {
        .size = sizeof arg,
        .flags = flags,
        .start = start,
        .end = end,
        .vec = (uintptr_t)runs,
        .vec_len = run_count,
        /* Written pages that exist: protecting a hole would make the kernel allocate page
         * tables for it (32 MiB for a sparse 16 GiB mapping), and a page that appears in a
         * hole later has no protect bit, so it reads as written anyway. */
        .category_mask = PAGE_IS_WRITTEN,
        .category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
        .return_mask = PAGE_IS_WRITTEN,
    };
    long n = ioctl(tracking.pagemap_fd, PAGEMAP_SCAN_IOCTL, &arg);
    *walk_end = arg.walk_end;
    return n;
}

static void close_all(void)
{
    if (tracking.userfault_fd >= 0)
        close(tracking.userfault_fd);
    if (tracking.pagemap_fd >= 0)
        close(tracking.pagemap_fd);
    tracking.userfault_fd = tracking.pagemap_fd = -1;
}

static bool unavailable(const char *reason)
{
    close_all();
    tracking.reason = reason;
    tracking.state = -1;
    return false;
}

static bool probe(void)
{
    if (core_config.options.scan_mode == SCAN_MODE_STOP)
        return unavailable("scan_mode=stop");
    /* User-mode faults only: allowed even with vm.unprivileged_userfaultfd=0. */
    tracking.userfault_fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    if (tracking.userfault_fd < 0)
        return unavailable(errno == ENOSYS ? "the kernel has no userfaultfd"
                                           : "userfaultfd is not allowed here");
    struct uffdio_api api = { .api = UFFD_API, .features = FEATURE_WP_ASYNC };
    if (ioctl(tracking.userfault_fd, UFFDIO_API, &api) != 0 || !(api.features & FEATURE_WP_ASYNC))
        return unavailable("userfaultfd lacks asynchronous write protection (Linux 6.7+)");
    tracking.pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (tracking.pagemap_fd < 0)
        return unavailable("/proc/self/pagemap cannot be opened");
    /* PAGEMAP_SCAN over a page of our own stack: ENOTTY where the ioctl does not exist. */
    struct page_region runs[RUNS_PER_CALL];
    uint64_t walk_end;
    uintptr_t page = (uintptr_t)runs & ~(uintptr_t)(PAGE_SIZE_BYTES - 1);
    if (pagemap_scan(page, page + PAGE_SIZE_BYTES, 0, runs, RUNS_PER_CALL, &walk_end) < 0)
        return unavailable("PAGEMAP_SCAN is missing (Linux 6.7+)");
    tracking.state = 1;
    tracking.reason = NULL;
    return true;
}

bool write_tracking_available(void)
{
    if (tracking.state == 0)
        probe();
    return tracking.state > 0;
}

const char *write_tracking_unavailable_reason(void)
{
    return tracking.reason ? tracking.reason : "not probed";
}

bool write_tracking_arm(uintptr_t start, uintptr_t end)
{
    if (!write_tracking_available() || end <= start)
        return false;
    struct uffdio_register reg = {
        .range = { .start = start, .len = end - start },
        .mode = UFFDIO_REGISTER_MODE_WP,
    };
    /* Registered by an earlier scan: the same context may register again. */
    if (ioctl(tracking.userfault_fd, UFFDIO_REGISTER, &reg) != 0)
        return false;
    /* Protect every page written since the last arming (all of them the first time). */
    for (uint64_t from = start; from < end;) {
        uint64_t walk_end = end;
        if (pagemap_scan(from, end, SCAN_WP_MATCHING | SCAN_CHECK_WPASYNC, NULL, 0, &walk_end) < 0)
            return false;
        if (walk_end <= from)
            return false;
        from = walk_end;
    }
    return true;
}

static bool written_runs(uintptr_t start, uintptr_t end, uint64_t flags,
                         void (*visit)(uintptr_t start, uintptr_t end, void *data), void *data)
{
    if (tracking.state <= 0)
        return false;
    struct page_region runs[RUNS_PER_CALL];
    for (uint64_t from = start; from < end;) {
        uint64_t walk_end = end;
        long n = pagemap_scan(from, end, flags | SCAN_CHECK_WPASYNC, runs, RUNS_PER_CALL, &walk_end);
        if (n < 0)
            return false;
        for (long i = 0; i < n; i++)
            visit(runs[i].start, runs[i].end, data);
        if (walk_end <= from)
            return false;
        from = walk_end;
    }
    return true;
}

bool write_tracking_written(uintptr_t start, uintptr_t end,
                            void (*visit)(uintptr_t start, uintptr_t end, void *data), void *data)
{
    return written_runs(start, end, 0, visit, data);
}

bool write_tracking_written_rearm(uintptr_t start, uintptr_t end,
                                  void (*visit)(uintptr_t start, uintptr_t end, void *data), void *data)
{
    return written_runs(start, end, SCAN_WP_MATCHING, visit, data);
}

void write_tracking_fork_child(void)
{
    /* Not closed through libc: the descriptors are the parent's too (shared by fork), and
     * closing ours does not touch the parent's. */
    close_all();
    if (tracking.state > 0)
        tracking.state = 0;
}
