/*
 * proc.c — /proc/self/maps and /proc/self/pagemap, parsed in place (see proc.h).
 *
 * Layer: preload, lib.  maps is read whole into the caller's buffer and split into lines in
 * place.  pagemap gives 8 bytes per page; bit 63 is "present", bit 62 "swapped": a page that
 * is neither was never touched (or was discarded) and holds only zeroes, so the scan skips
 * it without reading it — a sparse 64 GiB reservation costs pagemap reads, not memory reads.
 * mincore() answers the same question twenty times faster, but calls a swapped-out page
 * absent although it may hold pointers: it is used only while no swap area is active.
 */
#include "proc.h"
#include "sys.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <unistd.h>

#define PAGE 4096u
#define PAGEMAP_BATCH 512 /* entries per read: 2 MiB of address space */

static uintptr_t parse_hex(const char **cursor)
{
    uintptr_t value = 0;
    const char *p = *cursor;
    for (;; p++) {
        char c = *p;
        if (c >= '0' && c <= '9')
            value = value * 16 + (uintptr_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            value = value * 16 + (uintptr_t)(c - 'a' + 10);
        else
            break;
    }
    *cursor = p;
    return value;
}

static const char *skip_field(const char *p)
{
    while (*p && *p != ' ')
        p++;
    while (*p == ' ')
        p++;
    return p;
}

static void parse_line(char *line, struct mapping *mapping)
{
    const char *p = line;
    mapping->start = parse_hex(&p);
    if (*p == '-')
        p++;
    mapping->end = parse_hex(&p);
    while (*p == ' ')
        p++;
    mapping->readable = p[0] == 'r';
    mapping->writable = p[1] == 'w';
    mapping->executable = p[2] == 'x';
    mapping->shared = p[3] == 's';
    p = skip_field(p); /* perms */
    p = skip_field(p); /* offset */
    p = skip_field(p); /* device */
    const char *inode = p;
    p = skip_field(p); /* inode */
    mapping->name = p;
    mapping->file_backed = p[0] == '/' && !(inode[0] == '0' && inode[1] == ' ') &&
                           strncmp(p, "/dev/zero", 9) != 0 && strncmp(p, "/SYSV", 5) != 0 &&
                           strncmp(p, "/memfd:", 7) != 0;
}

bool proc_maps_for_each(char *buffer, size_t buffer_len,
                        void (*visit)(const struct mapping *mapping, void *data), void *data)
{
    int fd = sys_open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    size_t used = 0;
    for (;;) {
        if (used + 1 >= buffer_len) {
            sys_close(fd);
            return false;
        }
        ssize_t n = sys_read(fd, buffer + used, buffer_len - 1 - used);
        if (n < 0) {
            sys_close(fd);
            return false;
        }
        if (n == 0)
            break;
        used += (size_t)n;
    }
    sys_close(fd);
    buffer[used] = '\0';
    for (char *line = buffer; *line;) {
        char *newline = strchr(line, '\n');
        if (newline)
            *newline = '\0';
        struct mapping mapping;
        parse_line(line, &mapping);
        visit(&mapping, data);
        if (!newline)
            break;
        line = newline + 1;
    }
    return true;
}

bool proc_read_file(const char *path, char *buffer, size_t len)
{
    int fd = sys_open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t got = sys_read(fd, buffer, len - 1);
    sys_close(fd);
    if (got <= 0)
        return false;
    buffer[got] = '\0';
    return true;
}

unsigned long proc_count_mappings(void)
{
    char buffer[4096];
    int fd = sys_open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    unsigned long lines = 0;
    ssize_t got;
    while ((got = sys_read(fd, buffer, sizeof buffer)) > 0)
        for (ssize_t i = 0; i < got; i++)
            lines += buffer[i] == '\n';
    sys_close(fd);
    return lines;
}

unsigned long proc_max_map_count(void)
{
    char buffer[64];
    if (!proc_read_file("/proc/sys/vm/max_map_count", buffer, sizeof buffer))
        return 0;
    return strtoul(buffer, NULL, 10);
}

bool swap_is_active(void)
{
    /* /proc/swaps is a header line, then one line per active swap area. */
    char buffer[512];
    if (!proc_read_file("/proc/swaps", buffer, sizeof buffer))
        return true; /* unknown: assume the worst */
    const char *newline = strchr(buffer, '\n');
    return newline && newline[1] != '\0';
}

/* Turns a page-by-page "present?" answer into runs of present pages for visit. */
struct run_builder {
    void (*visit)(uintptr_t start, uintptr_t end, void *data);
    void *data;
    uintptr_t run_start;
    bool in_run;
    uintptr_t lower; /* the caller's start, inside the first page */
};

static void run_page(struct run_builder *runs, uintptr_t page, bool present)
{
    if (present && !runs->in_run) {
        runs->run_start = page > runs->lower ? page : runs->lower;
        runs->in_run = true;
    } else if (!present && runs->in_run) {
        runs->visit(runs->run_start, page, runs->data);
        runs->in_run = false;
    }
}

/* The rest of the range could not be asked about: read it all (be conservative). */
static void run_rest_unknown(struct run_builder *runs, uintptr_t page, uintptr_t end)
{
    uintptr_t from = runs->in_run ? runs->run_start : page;
    runs->visit(from > runs->lower ? from : runs->lower, end, runs->data);
}

static void run_finish(struct run_builder *runs, uintptr_t end)
{
    if (runs->in_run)
        runs->visit(runs->run_start, end, runs->data);
}

void mincore_for_each_present_run(uintptr_t start, uintptr_t end,
                                  void (*visit)(uintptr_t start, uintptr_t end, void *data),
                                  void *data)
{
    unsigned char resident[4096];
    struct run_builder runs = { visit, data, 0, false, start };
    start &= ~(uintptr_t)(PAGE - 1); /* partial first and last pages count as pages */
    for (uintptr_t page = start; page < end;) {
        size_t pages = (end - page + PAGE - 1) / PAGE;
        if (pages > sizeof resident)
            pages = sizeof resident;
        if (mincore((void *)page, pages * PAGE, resident) != 0) {
            run_rest_unknown(&runs, page, end);
            return;
        }
        for (size_t i = 0; i < pages; i++, page += PAGE)
            run_page(&runs, page, resident[i] & 1);
    }
    run_finish(&runs, end);
}

void pagemap_for_each_present_run(int pagemap_fd, uintptr_t start, uintptr_t end,
                                  void (*visit)(uintptr_t start, uintptr_t end, void *data),
                                  void *data)
{
    if (pagemap_fd < 0) {
        visit(start, end, data);
        return;
    }
    uint64_t entries[PAGEMAP_BATCH];
    struct run_builder runs = { visit, data, 0, false, start };
    start &= ~(uintptr_t)(PAGE - 1);
    for (uintptr_t page = start; page < end;) {
        size_t pages = (end - page + PAGE - 1) / PAGE;
        if (pages > PAGEMAP_BATCH)
            pages = PAGEMAP_BATCH;
        ssize_t got = sys_pread(pagemap_fd, entries, pages * sizeof(uint64_t),
                            (off_t)(page / PAGE * sizeof(uint64_t)));
        if (got <= 0) {
            run_rest_unknown(&runs, page, end);
            return;
        }
        size_t count = (size_t)got / sizeof(uint64_t);
        for (size_t i = 0; i < count; i++, page += PAGE)
            run_page(&runs, page, (entries[i] >> 62) & 3);
    }
    run_finish(&runs, end);
}
