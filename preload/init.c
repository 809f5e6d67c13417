/*
 * init.c — start-up, threads, fork and exit of the preloaded library.
 *
 * Layer: preload.  Lifecycle:
 *
 *   load     the constructor parses ARENASHIM_OPTIONS (a bad value stops the program with
 *            "arenashim: error: ..." and exit status 2), opens log_path, reserves the chunk
 *            space (core_init), builds the caller filter, installs the SIGSEGV handler, the
 *            fork handlers and the thread-exit key, and warms up libunwind.  Until then
 *            every allocation goes to jemalloc, which needs no set-up from us.
 *   thread   a thread gets its record when it first opens a region; a pthread key
 *            destructor ends its open regions when it exits.
 *   fork     every lock is taken before fork and released in parent and child.
 *   exit     the statistics are printed (stats=1) and written (stats_json=PATH).
 */
#include "shim.h"
#include "alloc_trace.h"
#include "collector.h"
#include "heap_ranges.h"
#include "summary.h"
#include "hook.h"
#include "markers.h"
#include "symbolize.h"
#include "unwind_guard.h"

#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>

__thread struct region *shim_region SHIM_TLS;
__thread struct thread_state *shim_thread SHIM_TLS;
__thread bool shim_suspended SHIM_TLS;
__thread struct region *shim_suspended_at SHIM_TLS;
__thread uintptr_t shim_suspended_below SHIM_TLS;

int shim_log_fd = STDERR_FILENO;

static pthread_key_t thread_exit_key;
static int init_state; /* 0 not started, 1 in progress, 2 done */

void shim_fatal_startup(const char *message)
{
    char line[1200];
    int n = snprintf(line, sizeof line, "arenashim: error: %s\n", message);
    if (n > (int)sizeof line - 1)
        n = (int)sizeof line - 1;
    ssize_t ignored = write(STDERR_FILENO, line, (size_t)n);
    (void)ignored;
    _exit(2);
}

void shim_warn(const char *message)
{
    char line[1200];
    int n = snprintf(line, sizeof line, "arenashim: warning: %s\n", message);
    if (n > (int)sizeof line - 1)
        n = (int)sizeof line - 1;
    ssize_t ignored = write(shim_log_fd, line, (size_t)n);
    (void)ignored;
}

/* Expands "%p" to the process id, so each process of a tree gets its own file. */
static void expand_path(char *out, size_t len, const char *pattern)
{
    size_t used = 0;
    for (const char *p = pattern; *p && used + 1 < len; p++) {
        if (p[0] == '%' && p[1] == 'p') {
            int n = snprintf(out + used, len - used, "%d", (int)getpid());
            used += n > 0 ? (size_t)n : 0;
            p++;
        } else {
            out[used++] = *p;
        }
    }
    out[used < len ? used : len - 1] = '\0';
}

static void check_directory_writable(const char *key, const char *path)
{
    char expanded[OPTIONS_PATH_MAX + 32], directory[OPTIONS_PATH_MAX + 32], message[3 * OPTIONS_PATH_MAX];
    expand_path(expanded, sizeof expanded, path);
    strcpy(directory, expanded);
    char *slash = strrchr(directory, '/');
    if (slash == NULL)
        strcpy(directory, ".");
    else if (slash == directory)
        directory[1] = '\0';
    else
        *slash = '\0';
    if (access(directory, W_OK) != 0) {
        snprintf(message, sizeof message,
                 "ARENASHIM_OPTIONS: %s=%s: cannot write in directory '%s' (%s); give a path in a "
                 "writable directory", key, path, directory, strerror(errno));
        shim_fatal_startup(message);
    }
}

/* Opens the log named by pattern for appending.  A symbolic link planted at the path is not
 * followed (O_NOFOLLOW): the report would go wherever it points, with this process's rights.
 * A new file is made 0644 at most (the umask may take more away). */
static int open_log_file(const char *pattern, char *path, size_t path_len)
{
    expand_path(path, path_len, pattern);
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);
}

static void open_log(const struct options *options)
{
    char path[OPTIONS_PATH_MAX + 32], message[3 * OPTIONS_PATH_MAX];
    if (options->log_path[0] == '\0')
        return;
    int fd = open_log_file(options->log_path, path, sizeof path);
    if (fd < 0) {
        int error = errno;
        snprintf(message, sizeof message,
                 "ARENASHIM_OPTIONS: log_path=%s: cannot open '%s' for appending (%s); give a "
                 "writable file path", options->log_path, path,
                 error == ELOOP ? "it is a symbolic link, which arenashim does not follow"
                                : strerror(error));
        shim_fatal_startup(message);
    }
    shim_log_fd = fd;
}

static struct thread_state *current_thread_record(void)
{
    return shim_thread;
}

static void thread_exit(void *record)
{
    struct thread_state *thread = record;
    shim_region = NULL;
    thread_state_exit(thread);
    hook_thread_exit();
    shim_thread = NULL;
}

struct thread_state *shim_current_thread(void)
{
    struct thread_state *thread = shim_thread;
    if (likely(thread != NULL))
        return thread;
    shim_ensure_initialized();
    thread = thread_state_create((pid_t)syscall(SYS_gettid));
    if (thread == NULL)
        return NULL;
    shim_thread = thread;
    alloc_trace_thread_start();
    /* Keys made at start-up are among glibc's first 32, whose values live in the thread
     * descriptor: setting one allocates nothing. */
    pthread_setspecific(thread_exit_key, thread);
    return thread;
}

static void fork_prepare(void)
{
    collector_lock();
    report_lock();
    core_lock_all();
}

static void fork_parent(void)
{
    core_unlock_all();
    report_unlock();
    collector_unlock();
}

static void fork_child(void)
{
    core_fork_child(shim_thread);
    report_fork_child();
    collector_fork_child();
    fault_handler_fork_child();
    heap_ranges_fork_child();
    symbolize_fork_child();
    markers_fork_child();
    if (shim_thread)
        shim_thread->tid = (pid_t)syscall(SYS_gettid);
    if (core.options.log_path[0] && strstr(core.options.log_path, "%p")) {
        /* A child that does not exec reports into its own file. */
        int old = shim_log_fd;
        char path[OPTIONS_PATH_MAX + 32];
        int fd = open_log_file(core.options.log_path, path, sizeof path);
        if (fd >= 0) {
            shim_log_fd = fd;
            close(old);
        }
    }
}

/* arenashim's own .data and .bss hold chunk addresses (core.base, the scan's records):
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

static void initialize(void)
{
    struct options options;
    char error[1024];
    options_set_defaults(&options);
    if (!options_parse(&options, getenv("ARENASHIM_OPTIONS"), error, sizeof error))
        shim_fatal_startup(error);
    if (getauxval(AT_SECURE)) {
        char dropped[128], message[256];
        if (options_restrict_for_secure_execution(&options, dropped, sizeof dropped) > 0) {
            snprintf(message, sizeof message, "secure-execution process (setuid, setgid or "
                     "capabilities): ARENASHIM_OPTIONS %s ignored", dropped);
            shim_warn(message);
        }
    }
    open_log(&options);
    if (options.stats_json[0])
        check_directory_writable("stats_json", options.stats_json);
    if (!core_init(&options, error, sizeof error))
        shim_fatal_startup(error);
    if (core.heap_only)
        shim_warn(error);
    shim_heap_init();
    heap_ranges_init();
    core.current_thread = current_thread_record;
    core.json_extra = summary_format_json;
    core.text_extra = summary_format_text;
    dl_iterate_phdr(register_own_segments, (void *)&core);
    caller_filter_init(&options);
    fault_handler_install();
    fault_handler_set_escape_hook();
    collector_init();
    unwind_guard_init();
    syscall_guard_init();
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    if (pthread_key_create(&thread_exit_key, thread_exit) != 0)
        shim_fatal_startup("cannot create the thread-exit key");
    report_warm_up();
    alloc_trace_init();
    hook_fast_paths_enabled = !alloc_trace_region_stacks;
    markers_init();
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

/* Programs that start the user's program rather than being it: with one of these first on
 * the command line (`strace ./server`, `perf record ./server`, `sh -c ./server`), the program
 * it runs is the root process. */
bool shim_is_launcher(void)
{
    static const char *launchers[] = {
        "env", "time", "timeout", "nice", "ionice", "taskset", "chrt", "numactl", "setarch", "prlimit",
        "stdbuf", "nohup", "flock", "xargs", "strace", "ltrace", "perf", "gdb", "valgrind",
        "sh", "bash", "dash", "zsh", "ksh", "busybox", "sudo", "su", "runuser", "setsid",
        "hyperfine", "make", "catchsegv", "unshare", "nsenter", NULL,
    };
    char path[512];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0)
        return false;
    path[n] = '\0';
    const char *name = strrchr(path, '/');
    name = name ? name + 1 : path;
    for (unsigned i = 0; launchers[i]; i++) {
        size_t len = strlen(launchers[i]);
        /* "python3.11", "perf_6.1": a launcher's name followed by a version. */
        if (strncmp(name, launchers[i], len) == 0 &&
            (name[len] == '\0' || name[len] == '.' || name[len] == '_' || name[len] == '-' ||
             (name[len] >= '0' && name[len] <= '9')))
            return true;
    }
    return false;
}

void shim_write_stats(void)
{
    static char buffer[64 << 10];
    if (!core.initialized)
        return;
    /* A launcher (strace, perf, sh) exits after the program it ran and would overwrite that
     * program's statistics file with its own empty one. */
    struct core_counters counters;
    stats_sum(&counters);
    if (counters.retired.regions_begun == 0 && shim_is_launcher())
        return;
    if (core.options.stats) {
        size_t n = stats_format_text(buffer, sizeof buffer);
        if (n >= sizeof buffer)
            n = sizeof buffer - 1;
        ssize_t ignored = write(shim_log_fd, buffer, n);
        (void)ignored;
    }
    if (core.options.stats_json[0]) {
        char path[OPTIONS_PATH_MAX + 32];
        expand_path(path, sizeof path, core.options.stats_json);
        size_t n = stats_format_json(buffer, sizeof buffer - 1);
        if (n >= sizeof buffer - 1)
            n = sizeof buffer - 2;
        buffer[n++] = '\n';
        /* Write beside the target and rename, so a reader never sees half a file.  The
         * temporary name is fresh (mkostemp: O_EXCL, mode 0600), so nothing planted there
         * is written through; rename replaces a link at the target instead of following it. */
        char temporary[OPTIONS_PATH_MAX + 64];
        snprintf(temporary, sizeof temporary, "%s.XXXXXX", path);
        int fd = mkostemp(temporary, O_CLOEXEC);
        if (fd >= 0) {
            size_t done = 0;
            while (done < n) {
                ssize_t w = write(fd, buffer + done, n - done);
                if (w <= 0)
                    break;
                done += (size_t)w;
            }
            close(fd);
            if (done == n)
                rename(temporary, path);
            else
                unlink(temporary);
        }
    }
}

__attribute__((destructor)) static void arenashim_unload(void)
{
    markers_report_unresolved();
    shim_write_stats();
}
