/*
 * address_space.c — reserving address space within what the process may map.
 *
 * Layer: core.  The chunk reservation and the metadata area are large PROT_NONE,
 * MAP_NORESERVE mappings: they cost no memory and, being neither writable nor accounted,
 * pass any overcommit policy.  What can stop them is RLIMIT_AS (`ulimit -v`), which counts
 * every byte of address space, and a kernel that refuses large mappings.  Both are met the
 * same way: ask for no more than a share of what the limit leaves, and halve on refusal down
 * to a minimum below which the caller runs without (see core_init).  An allocator that keeps
 * a program from starting under a limit it would otherwise run under is worse than none.
 */
#include "internal.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

/* The process's mapped size now, from /proc/self/statm (pages, first field); 0 if unknown. */
static size_t mapped_bytes(void)
{
    char text[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return 0;
    size_t pages = 0;
    for (ssize_t i = 0; i < n && text[i] >= '0' && text[i] <= '9'; i++)
        pages = pages * 10 + (size_t)(text[i] - '0');
    return pages * PAGE_SIZE_BYTES;
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
        void *raw = mmap(NULL, size + alignment, PROT_NONE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (raw == MAP_FAILED)
            continue;
        uintptr_t start = align_up((uintptr_t)raw, alignment);
        uintptr_t raw_end = (uintptr_t)raw + size + alignment;
        if (start != (uintptr_t)raw)
            munmap(raw, start - (uintptr_t)raw);
        if (raw_end != start + size)
            munmap((void *)(start + size), raw_end - (start + size));
        *bytes = size;
        return (void *)start;
    }
    return NULL;
}
