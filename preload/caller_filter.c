/*
 * caller_filter.c — modules whose allocations bypass regions.
 *
 * Layer: preload.  The C library and the dynamic loader make buffers lazily (stdio, locale,
 * time zone, dlopen's link maps) that outlive any region; an allocation whose immediate
 * caller lies in the code of an excluded module therefore goes to the heap even inside a
 * region.  At start-up the executable segments of every loaded module whose file name
 * matches an `exclude` entry ("libc.so.6", or a prefix up to a dot: "libc.so") are put in a
 * small table that the allocation path checks with a few compares.
 *
 * Modules loaded later by dlopen are added when the marker layer sees the link map change;
 * until then they are not excluded (their allocations are region allocations).
 */
#include "shim.h"

#include <link.h>
#include <string.h>

struct caller_filter shim_caller_filter;

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static bool module_matches(const char *file, const char *pattern)
{
    size_t len = strlen(pattern);
    return strncmp(file, pattern, len) == 0 && (file[len] == '\0' || file[len] == '.');
}

static int add_module(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    const struct options *options = data;
    const char *name = base_name(info->dlpi_name ? info->dlpi_name : "");
    if (name[0] == '\0')
        return 0; /* the executable is never excluded by name */
    bool excluded = false;
    for (unsigned i = 0; i < options->exclude_count && !excluded; i++)
        excluded = module_matches(name, options->exclude[i]);
    if (!excluded)
        return 0;
    for (unsigned i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *phdr = &info->dlpi_phdr[i];
        if (phdr->p_type != PT_LOAD || !(phdr->p_flags & PF_X))
            continue;
        if (shim_caller_filter.count == CALLER_FILTER_MAX)
            return 1;
        uintptr_t start = info->dlpi_addr + phdr->p_vaddr;
        shim_caller_filter.ranges[shim_caller_filter.count][0] = start;
        shim_caller_filter.ranges[shim_caller_filter.count][1] = start + phdr->p_memsz;
        shim_caller_filter.count++;
    }
    return 0;
}

void caller_filter_init(const struct options *options)
{
    shim_caller_filter.count = 0;
    dl_iterate_phdr(add_module, (void *)options);
}
