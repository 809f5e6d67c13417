/*
 * pages.c — every system call the core makes on its memory.
 *
 * Layer: core.  Reserving the chunk space and metadata areas, making pages accessible,
 * faulting them at region end (discard and PROT_NONE), moving physical pages between
 * addresses (mremap), protecting, populating ahead: each in one place, with the failure
 * handled where it happens.
 *
 * Reservations.  The chunk reservation and the metadata areas are large PROT_NONE,
 * MAP_NORESERVE mappings: they cost no memory and, being neither writable nor accounted,
 * pass any overcommit policy.  What can stop them is RLIMIT_AS (`ulimit -v`), which counts
 * every byte of address space, and a kernel that refuses large mappings.  Both are met the
 * same way: ask for no more than a share of what the limit leaves, and halve on refusal down
 * to a minimum below which the caller runs without (see core_init).  An allocator that keeps
 * a program from starting under a limit it would otherwise run under is worse than none.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/* Every call below on chunk or metadata memory counts here (memory_calls in the statistics):
 * the benchmark divides it by regions to show what each mode costs in system calls. */
static void *counted_mmap(void *address, size_t len, int protection, int flags, int fd, off_t offset)
{
    stats_add(&core_counters.memory_calls, 1);
    return mmap(address, len, protection, flags, fd, offset);
}

static int counted_munmap(void *address, size_t len)
{
    stats_add(&core_counters.memory_calls, 1);
    return munmap(address, len);
}

static int counted_mprotect(void *address, size_t len, int protection)
{
    stats_add(&core_counters.memory_calls, 1);
    return mprotect(address, len, protection);
}

static int counted_madvise(void *address, size_t len, int advice)
{
    stats_add(&core_counters.memory_calls, 1);
    return madvise(address, len, advice);
}

static void *counted_mremap(void *from, size_t len, size_t new_len, int flags, void *to)
{
    stats_add(&core_counters.memory_calls, 1);
    return mremap(from, len, new_len, flags, to);
}

/* Reads a small kernel file (a /proc or /sys entry) into text, NUL-terminated; false if it
 * cannot.  The raw read: in the preloaded library, read() is the system-call guard's. */
static bool read_kernel_file(const char *path, char *text, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = syscall(SYS_read, fd, text, len - 1);
    close(fd);
    if (n <= 0)
        return false;
    text[n] = '\0';
    return true;
}

static size_t leading_number(const char *text)
{
    size_t value = 0;
    for (; *text >= '0' && *text <= '9'; text++)
        value = value * 10 + (size_t)(*text - '0');
    return value;
}

/* The process's mapped size now, from /proc/self/statm (pages, first field); 0 if unknown. */
static size_t mapped_bytes(void)
{
    char text[128];
    return read_kernel_file("/proc/self/statm", text, sizeof text) ? leading_number(text) * PAGE_SIZE_BYTES : 0;
}

size_t address_space_left(void)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_AS, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY)
        return SIZE_MAX;
    size_t used = mapped_bytes();
    return limit.rlim_cur > used ? (size_t)(limit.rlim_cur - used) : 0;
}

void *address_space_reserve(size_t *bytes, size_t minimum, size_t alignment)
{
    for (size_t size = *bytes & ~(alignment - 1); size >= minimum && size >= alignment; size /= 2) {
        size &= ~(alignment - 1);
        /* One alignment unit more, so the start can be aligned; the excess is given back. */
        void *raw = counted_mmap(NULL, size + alignment, PROT_NONE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (raw == MAP_FAILED)
            continue;
        uintptr_t start = align_up((uintptr_t)raw, alignment);
        uintptr_t raw_end = (uintptr_t)raw + size + alignment;
        if (start != (uintptr_t)raw)
            counted_munmap(raw, start - (uintptr_t)raw);
        if (raw_end != start + size)
            counted_munmap((void *)(start + size), raw_end - (start + size));
        *bytes = size;
        return (void *)start;
    }
    return NULL;
}

void address_space_release(void *start, size_t bytes)
{
    counted_munmap(start, bytes);
}

bool pages_make_accessible(uintptr_t start, size_t bytes)
{
    return counted_mprotect((void *)start, bytes, PROT_READ | PROT_WRITE) == 0;
}

void chunk_prefer_huge_pages(uintptr_t start, size_t bytes)
{
    /* A chunk's pages are allocated, zeroed and moved on 512 at a time: one fault per chunk
     * instead of one per page, and a whole-chunk move carries one page-table entry.  Region
     * ends that protect part of a chunk split the mapping (not the memory). */
    if (core_config.kernel_huge_pages && counted_madvise((void *)start, bytes, MADV_HUGEPAGE) != 0)
        core_config.kernel_huge_pages = false;
}

/* Whether the page can be read: process_vm_readv on ourselves fails where a load would fault. */
static bool page_readable(uintptr_t page)
{
    char probe;
    struct iovec local = { &probe, 1 }, remote = { (void *)page, 1 };
    return syscall(SYS_process_vm_readv, getpid(), &local, 1, &remote, 1, 0) == 1;
}

/* Pages looked at either side of a dangling access for its run (16 MiB each way). */
#define RECOVER_RUN_PAGES_MAX 4096

/* Out of kernel mappings (vm.max_map_count, 65530 by default: reached after some 32,000
 * recovered pages with dead ones between them), making one page in the middle of a faulted
 * run accessible would split its mapping in three, which the kernel refuses: the program would
 * die of the dangling access recover mode promised to survive.  The inaccessible pages from
 * the page to its nearest accessible neighbour are made accessible with it instead: they join
 * that neighbour's mapping, so nothing is split.  Those few pages' dead objects then read
 * without a report.  The shorter side first, then the other; false when no accessible page of
 * the chunk space is within RECOVER_RUN_PAGES_MAX pages on a side that works. */
static bool recover_run(uintptr_t page)
{
    uintptr_t start = page, end = page + PAGE_SIZE_BYTES;
    bool left = false, right = false;
    for (unsigned n = 0; n < RECOVER_RUN_PAGES_MAX && core_owns((void *)(start - PAGE_SIZE_BYTES)); n++) {
        if ((left = page_readable(start - PAGE_SIZE_BYTES)))
            break;
        start -= PAGE_SIZE_BYTES;
    }
    for (unsigned n = 0; n < RECOVER_RUN_PAGES_MAX && core_owns((void *)end); n++) {
        if ((right = page_readable(end)))
            break;
        end += PAGE_SIZE_BYTES;
    }
    bool left_first = left && (!right || page - start <= end - page - PAGE_SIZE_BYTES);
    for (int attempt = 0; attempt < 2; attempt++, left_first = !left_first) {
        if (left_first ? !left : !right)
            continue;
        uintptr_t from = left_first ? start : page, to = left_first ? page + PAGE_SIZE_BYTES : end;
        if (pages_make_accessible(from, to - from)) {
            stats_add(&core_counters.recovered_runs, 1);
            return true;
        }
    }
    return false;
}

bool dangling_page_recover(uintptr_t address)
{
    /* Per page, not per chunk: the chunk's other dead objects must go on faulting. */
    if (core_config.options.on_dangling != ON_DANGLING_RECOVER)
        return false;
    uintptr_t page = address & ~(PAGE_SIZE_BYTES - 1);
    return pages_make_accessible(page, PAGE_SIZE_BYTES) || (errno == ENOMEM && recover_run(page));
}

/* A fresh PROT_NONE mapping with the reservation's own flags: the kernel drops the pages, and
 * the mapping merges with faulted or never-used neighbours, so a long run does not pile up
 * kernel mappings (vm.max_map_count).  When the kernel refuses (out of mappings), the pages
 * are at least discarded, so a dangling read sees zeroes. */
static void map_fresh_none(uintptr_t start, uintptr_t end)
{
    void *p = counted_mmap((void *)start, end - start, PROT_NONE,
                   MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED && counted_mprotect((void *)start, end - start, PROT_NONE) != 0)
        counted_madvise((void *)start, end - start, MADV_DONTNEED);
}

void pages_discard(uintptr_t start, uintptr_t end)
{
    if (end > start)
        map_fresh_none(start, end);
}

void chunk_fault_range(uintptr_t start, uintptr_t end)
{
    if (end <= start)
        return;
    if (core_config.options.on_dangling != ON_DANGLING_RECOVER) {
        map_fresh_none(start, end);
    } else if (counted_mprotect((void *)start, end - start, PROT_NONE) != 0) {
        /* Recover mode keeps the contents (a dangling access is reported, then the page is
         * made accessible again and the program reads what it would have read).  When the
         * kernel refuses (out of mappings: the range ends beside a page made accessible by a
         * dangling access, so protecting it would split a mapping), the pages stay as they
         * are: dangling accesses to them go unreported but read the same bytes.  Discarding
         * them instead made those reads see zeroes, and Python's test_pickle with
         * PYTHONMALLOC=malloc die of a null pointer in an object kept on a free list. */
        stats_add(&core_counters.ends_unprotected, 1);
        return;
    }
    stats_add(&core_counters.fault_calls, 1);
    stats_add(&core_counters.bytes_faulted, end - start);
}

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

bool chunk_move_pages(uintptr_t from, size_t len, uintptr_t to)
{
    if (!core_config.kernel_moves_pages || len == 0)
        return false;
    /* MREMAP_DONTUNMAP (Linux 5.7) moves the page tables and leaves the old range mapped and
     * empty: no hole opens at the old addresses. */
    void *moved = counted_mremap((void *)from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP,
                         (void *)to);
    if (moved != MAP_FAILED)
        return true;
    int error = errno;
    /* The kernel unmaps the destination before some failures: map it back at once (it was
     * untouched, so nothing is lost).  EEXIST means it was never unmapped. */
    void *p = counted_mmap((void *)to, len, PROT_READ | PROT_WRITE,
                   MAP_FIXED_NOREPLACE | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED && errno != EEXIST)
        counted_madvise((void *)to, len, MADV_DONTNEED);
    if (error == EINVAL)
        core_config.kernel_moves_pages = false;
    return false;
}

bool chunk_protect_range(uintptr_t start, uintptr_t end)
{
    if (counted_mprotect((void *)start, end - start, PROT_NONE) != 0)
        return false;
    stats_add(&core_counters.fault_calls, 1);
    stats_add(&core_counters.bytes_faulted, end - start);
    return true;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

bool chunk_populate(uintptr_t start, uintptr_t end)
{
    if (!core_config.kernel_populates || end <= start)
        return false;
    if (counted_madvise((void *)start, end - start, MADV_POPULATE_WRITE) != 0) {
        if (errno == EINVAL)
            core_config.kernel_populates = false; /* Linux before 5.14 */
        return false;
    }
    return true;
}

/* The huge page size if transparent huge pages can be asked for with madvise; 0 if not. */
static size_t transparent_huge_page_size(void)
{
    char text[128];
    if (!read_kernel_file("/sys/kernel/mm/transparent_hugepage/enabled", text, sizeof text) ||
        strstr(text, "[never]") != NULL)
        return 0;
    return read_kernel_file("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", text, sizeof text)
               ? leading_number(text) : 0;
}

void pages_probe_kernel(bool allowed)
{
    core_config.kernel_moves_pages = core_config.kernel_populates = false;
    core_config.kernel_huge_pages = false;
    if (!allowed)
        return;
    size_t huge = core_config.options.huge_pages ? transparent_huge_page_size() : 0;
    core_config.kernel_huge_pages = huge != 0 && core_config.chunk_size >= huge;
    /* Two scratch pages, not chunk memory (no counting): the first is populated, then moved
     * onto the second.  An old kernel answers EINVAL to the flag or the advice it lacks. */
    char *scratch = mmap(NULL, 2 * PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (scratch == MAP_FAILED)
        return;
    core_config.kernel_populates = madvise(scratch, PAGE_SIZE_BYTES, MADV_POPULATE_WRITE) == 0;
    core_config.kernel_moves_pages =
        mremap(scratch, PAGE_SIZE_BYTES, PAGE_SIZE_BYTES, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP,
               scratch + PAGE_SIZE_BYTES) != MAP_FAILED;
    munmap(scratch, 2 * PAGE_SIZE_BYTES);
}
