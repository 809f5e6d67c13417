/*
 * init.c — start-up and exit of the preloaded library: the composition root.
 *
 * Layer: preload, shim.  Lifecycle:
 *
 *   load     the constructor parses ARENASHIM_OPTIONS (a bad value stops the program with
 *            "arenashim: error: ..." and exit status 2; a setuid process drops the options
 *            that write files or weaken checks), opens log_path, reserves the chunk space
 *            (core_init), then brings up every layer in order: the heap, jemalloc's extent
 *            record, the caller filter, the SIGSEGV disposition, the collector, the unwind
 *            guards, the system-call guards, fork handlers, the thread-exit key, reports,
 *            allocation traces, the statistics over time (with stats_json), and the markers
 *            last (they may hook functions right away).
 *            Until then every allocation goes to jemalloc, which needs no set-up from us.
 *   thread   a thread gets its record when it first opens a region (thread/binding.c).
 *   exit     unresolved markers are listed, the statistics written (stats, stats_json).
 */
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "alloc_trace.h"
#include "caller_filter.h"
#include "collector.h"
#include "discover.h"
#include "heap_ranges.h"
#include "hook.h"
#include "log.h"
#include "markers.h"
#include "report.h"
#include "stats_out.h"
#include "timeseries.h"
#include "unwind_guard.h"

static int init_state; /* 0 not started, 1 in progress, 2 done */

/* The options of this process: parsed, restricted in a secure-execution process, checked. */
static void read_options(struct options *options)
{
    char error[1024];
    options_set_defaults(options);
    if (!options_parse(options, getenv("ARENASHIM_OPTIONS"), error, sizeof error))
        log_fatal_startup("%s", error);
    if (getauxval(AT_SECURE)) {
        char dropped[128];
        if (options_restrict_for_secure_execution(options, dropped, sizeof dropped) > 0)
            log_warn("secure-execution process (setuid, setgid or capabilities): ARENASHIM_OPTIONS "
                     "%s ignored", dropped);
    }
}

static void open_log(const struct options *options)
{
    char path[OPTIONS_PATH_MAX + 32];
    if (options->log_path[0] == '\0')
        return;
    /* Checked now, to say at once when it cannot be written; made at the first message. */
    if (log_check(options->log_path, path, sizeof path)) {
        log_open_later(options->log_path);
        return;
    }
    int error = errno;
    log_fatal_startup("ARENASHIM_OPTIONS: log_path=%s: cannot open '%s' for appending (%s); give a "
                      "writable file path", options->log_path, path,
                      error == ELOOP ? "it is a symbolic link, which arenashim does not follow"
                                     : strerror(error));
}

static void check_directory_writable(const char *key, const char *path)
{
    char directory[OPTIONS_PATH_MAX + 32];
    path_expand(directory, sizeof directory, path);
    char *slash = strrchr(directory, '/');
    if (slash == NULL)
        strcpy(directory, ".");
    else if (slash == directory)
        directory[1] = '\0';
    else
        *slash = '\0';
    if (access(directory, W_OK) != 0)
        log_fatal_startup("ARENASHIM_OPTIONS: %s=%s: cannot write in directory '%s' (%s); give a path "
                          "in a writable directory", key, path, directory, strerror(errno));
}

/* libunwind opens a pipe the first time it unwinds (it validates addresses by writing them
 * to it) and keeps it for the life of the process.  Opened while a standard descriptor is
 * closed, the pipe takes its number: a program started with stdin or stdout closed
 * (posix_spawn's close action, `cmd >&-`, a daemon) finds it open (Python's test_cmd_line and
 * test_posix did, in tests/peer).  So the warm-up that makes libunwind open it runs with the
 * closed standard descriptors held by /dev/null, closed again after. */
static void warm_up_unwinder(void)
{
    int held[3], count = 0;
    for (int fd = 0; fd < 3; fd++) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
            continue;
        int got = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (got == fd)
            held[count++] = got;
        else if (got >= 0)
            close(got);
    }
    report_warm_up();
    while (count > 0)
        close(held[--count]);
}

/* Hooked frames return into the exit stub: reports and traces walk with real addresses. */
static const struct unwind_fixup shadow_stack_fixup = { shadow_fixup_before_walk, shadow_fixup_after_walk };

/* arenashim's own .data and .bss hold chunk addresses (core_config.base, the scan's records):
 * they are metadata, invisible to the scan. */
static int register_own_segments(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    uintptr_t self = (uintptr_t)data;
    for (unsigned i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *phdr = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + phdr->p_vaddr;
        if (phdr->p_type == PT_LOAD && self - start < phdr->p_memsz) {
            for (unsigned j = 0; j < info->dlpi_phnum; j++) {
                const ElfW(Phdr) *segment = &info->dlpi_phdr[j];
                if (segment->p_type == PT_LOAD && (segment->p_flags & PF_W))
                    metadata_register((void *)(info->dlpi_addr + segment->p_vaddr), segment->p_memsz);
            }
            return 1;
        }
    }
    return 0;
}

/* verbose=1: which revocation mode and which kernel paths this process runs with. */
static void note_paths(const struct options *options)
{
    if (options->verbose == 0 || core_config.heap_only)
        return;
    char mode[160];
    if (options->partial_reuse)
        snprintf(mode, sizeof mode, "partial_reuse=1 (a chunk's dead regions are revoked when it fills)");
    else if (options->revoke_batch >= 2)
        snprintf(mode, sizeof mode, "revoke_batch=%u (dead regions revoked every %u region ends of a "
                 "thread, or when their chunk fills)", options->revoke_batch, options->revoke_batch);
    else
        snprintf(mode, sizeof mode, "strict (every region end revokes its pages)");
    bool recover = options->on_dangling == ON_DANGLING_RECOVER;
    const char *why = recover ? "on_dangling=recover keeps the contents"
                      : options->kernel_features_off ? "kernel_features=none" : "the kernel lacks it";
    bool moves = core_config.kernel_moves_pages && !recover;
    bool populates = core_config.kernel_populates && !recover;
    const char *huge = core_config.kernel_huge_pages ? "madvise(MADV_HUGEPAGE)"
                       : options->kernel_features_off ? "off (kernel_features=none)"
                       : !options->huge_pages ? "off (huge_pages=0)"
                       : "off (the kernel's transparent huge pages are off, or chunk_size is smaller)";
    log_note("revocation: %s; page recycling: %s%s%s; populating ahead: %s%s%s; huge pages: %s", mode,
             moves ? "mremap(MREMAP_DONTUNMAP)" : "off, pages faulted anew (", moves ? "" : why,
             moves ? "" : ")", populates ? "madvise(MADV_POPULATE_WRITE)" : "off, a fault per page (",
             populates ? "" : why, populates ? "" : ")", huge);
}

static void initialize(void)
{
    struct options options;
    char message[1024];
    read_options(&options);
    open_log(&options);
    if (options.stats_json[0])
        check_directory_writable("stats_json", options.stats_json);
    if (!core_init(&options, message, sizeof message))
        log_fatal_startup("%s", message);
    if (core_config.heap_only)
        log_warn("%s", message);
    note_paths(&options);
    shim_heap_init();
    heap_ranges_init();
    dl_iterate_phdr(register_own_segments, (void *)&core_config);
    caller_filter_init(&options);
    signals_install();
    collector_init();
    unwind_guard_init();
    syscall_guard_init();
    fork_handlers_install();
    if (!binding_init())
        log_fatal_startup("cannot create the thread-exit key");
    binding_set_thread_exit_listener(shadow_stack_thread_exit);
    warm_up_unwinder();
    report_set_unwind_fixup(&shadow_stack_fixup);
    alloc_trace_init();
    timeseries_init();
    hook_fast_paths_enabled = !alloc_trace_region_stacks;
    hook_set_link_map_listener(caller_filter_refresh);
    markers_init();
    if (options.discover && discover_init())
        shim_heap_follow_for_discovery();
}

void shim_ensure_initialized(void)
{
    if (likely(__atomic_load_n(&init_state, __ATOMIC_ACQUIRE) == 2))
        return;
    int expected = 0;
    if (__atomic_compare_exchange_n(&init_state, &expected, 1, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
        initialize();
        __atomic_store_n(&init_state, 2, __ATOMIC_RELEASE);
        return;
    }
    while (__atomic_load_n(&init_state, __ATOMIC_ACQUIRE) != 2)
        sched_yield();
}

__attribute__((constructor(101))) static void arenashim_load(void)
{
    shim_ensure_initialized();
}

__attribute__((destructor)) static void arenashim_unload(void)
{
    markers_report_unresolved();
    discover_write();
    stats_write();
}
