/*
 * stop_world.c — stop and resume every other thread (see stop_world.h).
 *
 * Layer: preload, collect.  Protocol, all with system calls and atomics (no locks, no malloc, no
 * stdio, since a stopped thread may hold any of them):
 *
 *   stop    bump stop_generation; list /proc/self/task with getdents64; send each other
 *           thread STOP_SIGNAL with rt_tgsigqueueinfo, carrying a cookie that tells it from
 *           the program's own uses of that signal; its handler finds its slot by tid, saves
 *           registers and
 *           stack pointer, acknowledges the generation and sleeps on a futex until
 *           resume_generation reaches it.  The list is read again until no new thread
 *           appears, so threads created meanwhile are stopped as well.
 *   wait    until every slot is acknowledged, or a thread is gone (ESRCH), or the deadline
 *           passes; a thread that blocks STOP_SIGNAL (SigBlk in /proc/self/task/T/status)
 *           ends the wait early.  Either failure resumes everyone: the scan is given up.
 *   resume  set resume_generation and wake every sleeper.
 */
#include "stop_world.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "arch.h"
#include "core.h"
#include "proc.h"
#include "sys.h"

#define STOP_WAIT_NS (500ull * 1000 * 1000)
#define STOP_SIGNAL_BLOCKED_CHECK_NS (5ull * 1000 * 1000)

#define STOP_COOKIE 0x61726e61 /* "arna": a stop request, not the program's signal */

static int stop_generation;
static int resume_generation;
static struct stopped_world *current_world;
static int threads_in_handler; /* resume waits for them to leave before the next stop */

static long futex(int *address, int op, int value)
{
    return syscall(SYS_futex, address, op, value, NULL, NULL, 0);
}

static void (*foreign_handler)(int, siginfo_t *, void *);

int stop_world_signal(void)
{
    return SIGRTMAX - 2;
}

void stop_world_set_foreign_handler(void (*foreign)(int, siginfo_t *, void *))
{
    foreign_handler = foreign;
}

static bool is_stop_request(const siginfo_t *info)
{
    return info->si_code == SI_QUEUE && info->si_pid == getpid() && info->si_value.sival_int == STOP_COOKIE;
}

void stop_world_handler(int signal, siginfo_t *info, void *context)
{
    if (!is_stop_request(info)) {
        if (foreign_handler)
            foreign_handler(signal, info, context);
        return;
    }
    int saved_errno = errno;
    __atomic_add_fetch(&threads_in_handler, 1, __ATOMIC_ACQ_REL);
    int generation = __atomic_load_n(&stop_generation, __ATOMIC_ACQUIRE);
    struct stopped_world *world = __atomic_load_n(&current_world, __ATOMIC_ACQUIRE);
    pid_t tid = (pid_t)syscall(SYS_gettid);
    if (world != NULL && __atomic_load_n(&resume_generation, __ATOMIC_ACQUIRE) < generation) {
        unsigned count = __atomic_load_n(&world->count, __ATOMIC_ACQUIRE);
        for (unsigned i = 0; i < count; i++) {
            struct stopped_thread *slot = &world->threads[i];
            if (slot->tid != tid)
                continue;
            slot->register_words = registers_from_context(context, slot->registers,
                                                          SAVED_REGISTER_WORDS, &slot->stack_pointer);
            slot->stopped = true;
            __atomic_store_n(&slot->acknowledged, generation, __ATOMIC_RELEASE);
            futex(&slot->acknowledged, FUTEX_WAKE_PRIVATE, 1);
            break;
        }
        while (__atomic_load_n(&resume_generation, __ATOMIC_ACQUIRE) < generation)
            futex(&resume_generation, FUTEX_WAIT_PRIVATE, __atomic_load_n(&resume_generation, __ATOMIC_ACQUIRE));
    }
    __atomic_sub_fetch(&threads_in_handler, 1, __ATOMIC_ACQ_REL);
    errno = saved_errno;
}

/* A stop request to one thread: the signal with the cookie (rt_tgsigqueueinfo may carry a
 * negative si_code to threads of the caller's own process). */
static int send_stop(pid_t tid)
{
    siginfo_t info;
    memset(&info, 0, sizeof info);
    info.si_signo = stop_world_signal();
    info.si_code = SI_QUEUE;
    info.si_pid = getpid();
    info.si_uid = getuid();
    info.si_value.sival_int = STOP_COOKIE;
    return (int)syscall(SYS_rt_tgsigqueueinfo, getpid(), tid, stop_world_signal(), &info);
}

struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

static pid_t parse_tid(const char *name)
{
    pid_t tid = 0;
    for (; *name; name++) {
        if (*name < '0' || *name > '9')
            return 0;
        tid = tid * 10 + (*name - '0');
    }
    return tid;
}

static bool world_has(const struct stopped_world *world, pid_t tid)
{
    for (unsigned i = 0; i < world->count; i++)
        if (world->threads[i].tid == tid)
            return true;
    for (unsigned i = 0; i < world->leave_running_count; i++)
        if (world->leave_running[i] == tid)
            return true;
    return false;
}

/* Adds and signals every thread not yet in the world; returns how many were new. */
static int signal_new_threads(struct stopped_world *world, pid_t self, int generation)
{
    char buffer[4096];
    int added = 0;
    int fd = sys_open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buffer, sizeof buffer);
        if (n <= 0)
            break;
        for (long offset = 0; offset < n;) {
            struct linux_dirent64 *entry = (struct linux_dirent64 *)(buffer + offset);
            offset += entry->d_reclen;
            pid_t tid = parse_tid(entry->d_name);
            if (tid <= 0 || tid == self || world_has(world, tid))
                continue;
            if (world->count == STOPPED_THREADS_MAX) {
                sys_close(fd);
                return -1;
            }
            struct stopped_thread *slot = &world->threads[world->count];
            memset(slot, 0, sizeof *slot);
            slot->tid = tid;
            __atomic_store_n(&world->count, world->count + 1, __ATOMIC_RELEASE);
            if (send_stop(tid) != 0)
                slot->acknowledged = generation; /* gone already: nothing to wait for */
            added++;
        }
    }
    sys_close(fd);
    return added;
}

/* Reads /proc/self/task/TID/FILE into buffer (NUL-terminated); false if it cannot. */
static bool read_task_file(pid_t tid, const char *file, char *buffer, size_t len)
{
    char path[64] = "/proc/self/task/", digits[16];
    size_t used = strlen(path);
    int n = 0;
    do {
        digits[n++] = (char)('0' + tid % 10);
        tid /= 10;
    } while (tid);
    while (n)
        path[used++] = digits[--n];
    path[used++] = '/';
    strcpy(path + used, file);
    return proc_read_file(path, buffer, len);
}

/* Is the signal in the thread's blocked mask (SigBlk: in /proc/self/task/T/status)? */
static bool thread_blocks_signal(pid_t tid, int signal)
{
    char status[4096];
    if (!read_task_file(tid, "status", status, sizeof status))
        return false;
    const char *line = strstr(status, "SigBlk:");
    if (line == NULL)
        return false;
    line += 7;
    while (*line == ' ' || *line == '\t')
        line++;
    uint64_t mask = 0;
    for (; (*line >= '0' && *line <= '9') || (*line >= 'a' && *line <= 'f'); line++)
        mask = mask * 16 + (uint64_t)(*line <= '9' ? *line - '0' : *line - 'a' + 10);
    return (mask >> (signal - 1)) & 1;
}

/* Gone, or a zombie: a main thread that called pthread_exit stays listed (state Z) while the
 * process lives, and never runs a handler again. */
static bool thread_gone(pid_t tid)
{
    if (syscall(SYS_tgkill, getpid(), tid, 0) != 0 && errno == ESRCH)
        return true;
    char stat[512];
    if (!read_task_file(tid, "stat", stat, sizeof stat))
        return true;
    const char *close_paren = strrchr(stat, ')');
    if (close_paren == NULL || close_paren[1] != ' ')
        return false;
    char state = close_paren[2];
    return state == 'Z' || state == 'X' || state == 'x';
}

/* The threads of the last stop leave the handler (where every signal is blocked) before a
 * new stop looks at their blocked masks; bounded, since a thread may be descheduled.  Waited
 * for here, not at resume: the pause ends when they may run. */
static void wait_for_last_stop_to_end(void)
{
    uint64_t deadline = monotonic_ns() + 50ull * 1000 * 1000;
    while (__atomic_load_n(&threads_in_handler, __ATOMIC_ACQUIRE) > 0 && monotonic_ns() < deadline)
        sched_yield();
}

bool stop_world(struct stopped_world *world)
{
    wait_for_last_stop_to_end();
    pid_t self = (pid_t)syscall(SYS_gettid);
    world->count = 0;
    world->unresponsive_tid = 0;
    int generation = __atomic_add_fetch(&stop_generation, 1, __ATOMIC_ACQ_REL);
    __atomic_store_n(&current_world, world, __ATOMIC_RELEASE);

    int added;
    while ((added = signal_new_threads(world, self, generation)) > 0) {
    }
    if (added < 0) {
        resume_world(world);
        return false;
    }

    uint64_t start = monotonic_ns();
    unsigned blocked_seen = 0; /* checks that found the signal blocked, 20 ms apart */
    uint64_t next_check = STOP_SIGNAL_BLOCKED_CHECK_NS;
    for (unsigned i = 0; i < world->count; i++) {
        struct stopped_thread *slot = &world->threads[i];
        while (__atomic_load_n(&slot->acknowledged, __ATOMIC_ACQUIRE) != generation) {
            uint64_t waited = monotonic_ns() - start;
            if (thread_gone(slot->tid))
                break;
            /* A thread blocks the signal briefly inside pthread_create or a previous stop;
             * only one that still blocks it 20 ms later is taken to block it for good. */
            if (waited > next_check) {
                next_check = waited + 20 * 1000 * 1000;
                blocked_seen = thread_blocks_signal(slot->tid, stop_world_signal()) ? blocked_seen + 1 : 0;
            }
            if (waited > STOP_WAIT_NS || blocked_seen >= 2) {
                world->unresponsive_tid = slot->tid;
                resume_world(world);
                return false;
            }
            struct timespec pause = { 0, 50 * 1000 };
            int seen = __atomic_load_n(&slot->acknowledged, __ATOMIC_ACQUIRE);
            if (seen != generation)
                syscall(SYS_futex, &slot->acknowledged, FUTEX_WAIT_PRIVATE, seen, &pause, NULL, 0);
        }
        /* New threads may have been created by a thread before it stopped. */
        if (i + 1 == world->count && signal_new_threads(world, self, generation) < 0) {
            resume_world(world);
            return false;
        }
    }
    return true;
}

void resume_world(struct stopped_world *world)
{
    (void)world;
    __atomic_store_n(&resume_generation, __atomic_load_n(&stop_generation, __ATOMIC_ACQUIRE),
                     __ATOMIC_RELEASE);
    futex(&resume_generation, FUTEX_WAKE_PRIVATE, 1 << 30);
    __atomic_store_n(&current_world, NULL, __ATOMIC_RELEASE);
}

