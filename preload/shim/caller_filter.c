/*
 * caller_filter.c — modules whose allocations bypass regions.
 *
 * Layer: preload, shim.  The C library and the dynamic loader make buffers lazily (stdio, locale,
 * time zone, dlopen's link maps) that outlive any region; an allocation whose immediate
 * caller lies in the code of an excluded module therefore goes to the heap even inside a
 * region.  At start-up the executable segments of every loaded module whose file name
 * matches an `exclude` entry ("libc.so.6", or a prefix up to a dot: "libc.so") are put in a
 * small table that the allocation path checks with a few compares.
 *
 * Modules loaded later are added when the marker layer's link-map hook sees them
 * (caller_filter_refresh); that hook exists only when function markers are in use.
 */
#include "caller_filter.h"

#include "elf_reader.h"

#include <link.h>
#include <string.h>

struct caller_filter excluded_callers;

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static int add_module(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct { struct caller_filter *filter; const struct options *options; } *context = data;
    struct caller_filter *filter = context->filter;
    const struct options *options = context->options;
    const char *name = base_name(info->dlpi_name ? info->dlpi_name : "");
    if (name[0] == '\0')
        return 0; /* the executable is never excluded by name */
    bool excluded = false;
    for (unsigned i = 0; i < options->exclude_count && !excluded; i++)
        excluded = elf_file_name_matches(name, options->exclude[i]);
    if (!excluded)
        return 0;
    for (unsigned i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *phdr = &info->dlpi_phdr[i];
        if (phdr->p_type != PT_LOAD || !(phdr->p_flags & PF_X))
            continue;
        if (filter->count == CALLER_FILTER_MAX)
            return 1;
        uintptr_t start = info->dlpi_addr + phdr->p_vaddr;
        filter->ranges[filter->count][0] = start;
        filter->ranges[filter->count][1] = start + phdr->p_memsz;
        filter->count++;
    }
    return 0;
}

static void update_hull(struct caller_filter *filter)
{
    uintptr_t low = UINTPTR_MAX, high = 0;
    for (unsigned i = 0; i < filter->count; i++) {
        if (filter->ranges[i][0] < low)
            low = filter->ranges[i][0];
        if (filter->ranges[i][1] > high)
            high = filter->ranges[i][1];
    }
    if (filter->count == 0)
        low = high = 0;
    filter->low = low;
    filter->span = high - low;
}

static void build(struct caller_filter *filter, const struct options *options)
{
    struct { struct caller_filter *filter; const struct options *options; } context = { filter, options };
    filter->count = 0;
    dl_iterate_phdr(add_module, &context);
    update_hull(filter);
}

void caller_filter_init(const struct options *options)
{
    build(&excluded_callers, options);
}

void caller_filter_refresh(void)
{
    /* Other threads read the table without a lock: new modules come last in load order, so
     * their ranges are written past the published count first and then published. */
    struct caller_filter fresh;
    build(&fresh, &core_config.options);
    unsigned published = excluded_callers.count;
    bool prefix_same = fresh.count >= published &&
                       memcmp(fresh.ranges, excluded_callers.ranges, published * sizeof fresh.ranges[0]) == 0;
    if (!prefix_same)
        published = 0; /* an excluded module went away: rewrite (rare) */
    for (unsigned i = published; i < fresh.count; i++) {
        excluded_callers.ranges[i][0] = fresh.ranges[i][0];
        excluded_callers.ranges[i][1] = fresh.ranges[i][1];
    }
    /* Widen the hull before publishing the new ranges (a reader may see the old count with
     * the new hull, never the reverse), through states that each cover the old hull: the
     * span grows first, from the old low, then low moves down with the span to match. */
    uintptr_t old_low = excluded_callers.low, old_high = old_low + excluded_callers.span;
    uintptr_t low = fresh.low, high = fresh.low + fresh.span;
    if (excluded_callers.count != 0) {
        low = old_low < low ? old_low : low;
        high = old_high > high ? old_high : high;
        __atomic_store_n(&excluded_callers.span, high - old_low, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&excluded_callers.low, low, __ATOMIC_RELEASE);
    __atomic_store_n(&excluded_callers.span, high - low, __ATOMIC_RELEASE);
    __atomic_store_n(&excluded_callers.count, fresh.count, __ATOMIC_RELEASE);
}
