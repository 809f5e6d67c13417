/*
 * signals.c — the signals arenashim uses: SIGSEGV (dangling accesses) and the scan's stop
 * signal, each chained to the program's own use of it.
 *
 * Layer: preload, shim.  arenashim owns the process's real SIGSEGV disposition.  A fault
 * whose address lies in faulted region memory is reported (report/dangling.c: the first line
 * scripts match, the access backtrace, where its region began and ended); then, with
 * on_dangling=abort, the default
 * disposition is restored and the faulting instruction re-executes, so the process dies by
 * SIGSEGV as it would have without us; with on_dangling=recover the page is made accessible
 * again (its contents were kept) and the program goes on.
 *
 * Programs install SIGSEGV handlers of their own (Python's faulthandler, JVMs, crash
 * reporters).  sigaction() and signal() are interposed: for SIGSEGV they record the
 * program's action instead of installing it, and report it back as the current one; every
 * fault that is not arenashim's goes to that action, honouring its flags and mask.
 *
 * The scan stops threads with SIGRTMAX - 2 (collect/stop_world.c).  A program may use that
 * signal too: sigaction records its action the same way, and a delivery that is not a stop
 * request (stop requests carry a cookie) goes to it.  A program may also block every signal
 * in its threads (worker pools often do): pthread_sigmask and sigprocmask never block the
 * stop signal, as a collector's suspend signal must not be (Boehm's GC does the same).  Its
 * handler touches nothing of the program's: it saves registers and waits.
 */
#include "shim.h"

#include "arch.h"
#include "dangling.h"
#include "log.h"
#include "proc.h"
#include "scan_workers.h"
#include "stats_out.h"
#include "stop_world.h"
#include "sys.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>


/* A signal arenashim installs its own handler for, and what the program believes is
 * installed for it. */
struct owned_signal {
    int signal;
    bool installed;
    struct sigaction program_action;
};
enum { OWNED_SEGV, OWNED_STOP, OWNED_COUNT };
static struct owned_signal owned[OWNED_COUNT];
static spin_lock action_lock = SPIN_LOCK_INIT;

/* glibc's own, found at start-up: they keep glibc's internal signals unblockable too. */
static int (*real_pthread_sigmask)(int, const sigset_t *, sigset_t *);
static int (*real_sigprocmask)(int, const sigset_t *, sigset_t *);

static int thread_mask(int how, const sigset_t *set, sigset_t *old)
{
    if (real_pthread_sigmask)
        return real_pthread_sigmask(how, set, old);
    return syscall(SYS_rt_sigprocmask, how, set, old, _NSIG / 8) == 0 ? 0 : errno;
}

static struct owned_signal *owned_signal_of(int signal)
{
    for (unsigned i = 0; i < OWNED_COUNT; i++)
        if (owned[i].signal == signal && signal != 0 && __atomic_load_n(&owned[i].installed, __ATOMIC_ACQUIRE))
            return &owned[i];
    return NULL;
}

static void restore_default(int signal)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = SIG_DFL;
    sigemptyset(&action.sa_mask);
    sys_sigaction(signal, &action, NULL);
}

/* Hands a delivery that is not ours to the program's action, as the kernel would have: its
 * handler runs with the thread's mask at delivery plus its sa_mask (and the signal, unless
 * SA_NODEFER); the default action or SIG_IGN as the kernel applies them. */
static void chain_to_program(struct owned_signal *o, siginfo_t *info, void *context)
{
    int signal = o->signal;
    struct sigaction action;
    spin_lock_acquire(&action_lock);
    action = o->program_action;
    if (action.sa_flags & SA_RESETHAND) {
        memset(&o->program_action, 0, sizeof o->program_action);
        o->program_action.sa_handler = SIG_DFL;
    }
    spin_lock_release(&action_lock);

    bool fault = signal == SIGSEGV && info->si_code > 0;
    if (!(action.sa_flags & SA_SIGINFO) && action.sa_handler == SIG_IGN) {
        if (fault)
            restore_default(signal); /* a real fault cannot be ignored: the kernel kills */
        return;                      /* a signal sent by kill(): ignored, as asked */
    }
    if (!(action.sa_flags & SA_SIGINFO) && action.sa_handler == SIG_DFL) {
        restore_default(signal);
        if (!fault) {
            /* Sent, not a fault: the default action (termination) happens on return. */
            sigset_t set;
            sigemptyset(&set);
            sigaddset(&set, signal);
            raise(signal);
            pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        }
        return; /* a fault re-executes and kills by the default action */
    }
    sigset_t previous, mask = ((const ucontext_t *)context)->uc_sigmask;
    for (int s = 1; s < NSIG; s++)
        if (sigismember(&action.sa_mask, s) == 1)
            sigaddset(&mask, s);
    if (!(action.sa_flags & SA_NODEFER))
        sigaddset(&mask, signal);
    thread_mask(SIG_SETMASK, &mask, &previous);
    if (action.sa_flags & SA_SIGINFO)
        action.sa_sigaction(signal, info, context);
    else
        action.sa_handler(signal);
    thread_mask(SIG_SETMASK, &previous, NULL);
}

static void stop_signal_not_ours(int signal, siginfo_t *info, void *context)
{
    (void)signal;
    int saved_errno = errno;
    chain_to_program(&owned[OWNED_STOP], info, context);
    errno = saved_errno;
}

/* Once, when recover mode first ran out of kernel mappings and made more than the page of a
 * dangling access accessible (dangling_page_recover): from then on some are not reported. */
static void warn_once_if_runs_recovered(void)
{
    static int warned;
    if (__atomic_load_n(&core_counters.recovered_runs, __ATOMIC_RELAXED) == 0 ||
        __atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
        return;
    log_warn("on_dangling=recover: out of kernel mappings (vm.max_map_count %lu): a dangling access now "
             "also makes the dead pages between it and an accessible page accessible, and later accesses "
             "to those are not reported (counted in recovered_runs)", proc_max_map_count());
}

static void segv_handler(int signal, siginfo_t *info, void *context)
{
    int saved_errno = errno;
    /* A marking thread reading memory the program unmapped meanwhile: its job is abandoned
     * (does not return). */
    if (info->si_code > 0 && scan_workers_recover_fault(info))
        return;
    struct dangling_info dangling;
    if (info->si_code > 0 && dangling_lookup((uintptr_t)info->si_addr, &dangling)) {
        stats_add(&core_counters.dangling_accesses, 1);
        bool first;
        uint32_t site = escape_note((uintptr_t)info->si_addr, ESCAPE_ACCESS, &first);
        report_dangling(&dangling, context, site, context_fault_is_write(context));
        if (dangling_page_recover((uintptr_t)info->si_addr)) {
            warn_once_if_runs_recovered();
            errno = saved_errno;
            return;
        }
        stats_write();
        restore_default(SIGSEGV);
        errno = saved_errno;
        return;
    }
    (void)signal;
    chain_to_program(&owned[OWNED_SEGV], info, context);
    errno = saved_errno;
}

bool dangling_buffer_check(uintptr_t buffer, size_t len, bool write)
{
    uintptr_t start = buffer, end = start + len;
    if (len == 0 || end < start || (!core_owns((void *)start) && !core_owns((void *)(end - 1))))
        return true;
    for (uintptr_t page = start & ~(PAGE_SIZE_BYTES - 1); page < end; page += PAGE_SIZE_BYTES) {
        uintptr_t address = page < start ? start : page;
        struct dangling_info dangling;
        if (!core_owns((void *)address) || !chunk_address_is_dead((void *)address) ||
            !dangling_lookup(address, &dangling))
            continue;
        /* A page pinned by an earlier recovered access is readable again: nothing to do.
         * (process_vm_readv on ourselves is a probe that fails instead of faulting.) */
        char probe;
        struct iovec local = { &probe, 1 }, remote = { (void *)address, 1 };
        if (core_config.options.on_dangling == ON_DANGLING_RECOVER &&
            process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == 1)
            continue;
        stats_add(&core_counters.dangling_accesses, 1);
        bool first;
        uint32_t site = escape_note(address, ESCAPE_ACCESS, &first);
        report_dangling(&dangling, NULL, site, write);
        if (dangling_page_recover(page)) {
            warn_once_if_runs_recovered();
            continue;
        }
        stats_write();
        restore_default(SIGSEGV);
        raise(SIGSEGV);
        _exit(EXIT_DANGLING);
    }
    return true;
}

static void own_signal(struct owned_signal *o, int signal, void (*handler)(int, siginfo_t *, void *),
                       int flags, bool mask_all)
{
    struct sigaction action, previous;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = handler;
    action.sa_flags = SA_SIGINFO | flags;
    if (mask_all)
        sigfillset(&action.sa_mask);
    else
        sigemptyset(&action.sa_mask);
    spin_lock_acquire(&action_lock);
    o->signal = signal;
    if (sys_sigaction(signal, &action, &previous) == 0) {
        o->program_action = previous; /* a handler installed before us is chained, not lost */
        __atomic_store_n(&o->installed, true, __ATOMIC_RELEASE);
    }
    spin_lock_release(&action_lock);
}

void signals_install(void)
{
    *(void **)&real_pthread_sigmask = dlsym(RTLD_NEXT, "pthread_sigmask");
    *(void **)&real_sigprocmask = dlsym(RTLD_NEXT, "sigprocmask");
    own_signal(&owned[OWNED_SEGV], SIGSEGV, segv_handler, SA_ONSTACK | SA_NODEFER | SA_RESTART, false);
    /* Nothing else runs on a stopped thread: every signal is blocked while it waits. */
    stop_world_set_foreign_handler(stop_signal_not_ours);
    own_signal(&owned[OWNED_STOP], stop_world_signal(), stop_world_handler, SA_ONSTACK | SA_RESTART, true);
}

EXPORTED int sigaction(int signal, const struct sigaction *action, struct sigaction *old)
{
    struct owned_signal *o = owned_signal_of(signal);
    if (o == NULL)
        return sys_sigaction(signal, action, old);
    spin_lock_acquire(&action_lock);
    if (old)
        *old = o->program_action;
    if (action)
        o->program_action = *action;
    spin_lock_release(&action_lock);
    return 0;
}

/* The program's masks never hold the stop signal (see the top of this file).  The old mask
 * it gets back is the thread's real one. */
static const sigset_t *without_stop_signal(int how, const sigset_t *set, sigset_t *copy)
{
    if (set == NULL || how == SIG_UNBLOCK || owned_signal_of(stop_world_signal()) == NULL ||
        sigismember(set, stop_world_signal()) != 1)
        return set;
    *copy = *set;
    sigdelset(copy, stop_world_signal());
    return copy;
}

EXPORTED int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
    sigset_t copy;
    return thread_mask(how, without_stop_signal(how, set, &copy), old);
}

EXPORTED int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
    sigset_t copy;
    if (real_sigprocmask)
        return real_sigprocmask(how, without_stop_signal(how, set, &copy), old);
    int error = thread_mask(how, without_stop_signal(how, set, &copy), old);
    if (error) {
        errno = error;
        return -1;
    }
    return 0;
}

static sighandler_t set_program_handler(int signal, sighandler_t handler, int flags, bool mask_self)
{
    struct sigaction action, old;
    memset(&action, 0, sizeof action);
    action.sa_handler = handler;
    action.sa_flags = flags;
    sigemptyset(&action.sa_mask);
    if (mask_self && signal > 0 && signal < NSIG)
        sigaddset(&action.sa_mask, signal);
    if (sigaction(signal, &action, &old) != 0)
        return SIG_ERR;
    return (old.sa_flags & SA_SIGINFO) ? (sighandler_t)(void *)old.sa_sigaction : old.sa_handler;
}

/* glibc's signal() has BSD semantics: the handler stays installed, blocks its own signal
 * while it runs, and interrupted calls restart.  Interposed for every signal because glibc
 * calls its internal sigaction, which would bypass the SIGSEGV bookkeeping above. */
EXPORTED sighandler_t signal(int signal, sighandler_t handler)
{
    return set_program_handler(signal, handler, SA_RESTART, true);
}

EXPORTED sighandler_t bsd_signal(int signal, sighandler_t handler) __attribute__((alias("signal"), copy(signal)));

EXPORTED sighandler_t sysv_signal(int signal, sighandler_t handler)
{
    return set_program_handler(signal, handler, SA_RESETHAND | SA_NODEFER, false);
}

void signals_fork_child(void)
{
    spin_lock_reset(&action_lock);
}
