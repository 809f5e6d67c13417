/*
 * signals.c — SIGSEGV: dangling accesses to faulted region memory, and chaining.
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
 */
#include "shim.h"

#include "arch.h"
#include "dangling.h"
#include "log.h"
#include "scan_workers.h"
#include "stats_out.h"
#include "sys.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>


static struct sigaction program_action; /* what the program believes is installed */
static bool installed;
static spin_lock action_lock = SPIN_LOCK_INIT;

static void restore_default_and_return(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = SIG_DFL;
    sigemptyset(&action.sa_mask);
    sys_sigaction(SIGSEGV, &action, NULL);
}

/* Hands a fault that is not ours to the program's action, as the kernel would have. */
static void chain_to_program(int signal, siginfo_t *info, void *context)
{
    struct sigaction action;
    spin_lock_acquire(&action_lock);
    action = program_action;
    if (action.sa_flags & SA_RESETHAND) {
        memset(&program_action, 0, sizeof program_action);
        program_action.sa_handler = SIG_DFL;
    }
    spin_lock_release(&action_lock);

    if (!(action.sa_flags & SA_SIGINFO) && action.sa_handler == SIG_IGN) {
        if (info->si_code <= 0)
            return; /* a SIGSEGV sent by kill(): ignoring it is what the program asked */
        restore_default_and_return(); /* a real fault cannot be ignored: the kernel kills */
        return;
    }
    if (!(action.sa_flags & SA_SIGINFO) && action.sa_handler == SIG_DFL) {
        restore_default_and_return();
        if (info->si_code <= 0) {
            sigset_t set;
            sigemptyset(&set);
            sigaddset(&set, SIGSEGV);
            pthread_sigmask(SIG_UNBLOCK, &set, NULL);
            raise(SIGSEGV);
        }
        return;
    }
    sigset_t previous, mask = action.sa_mask;
    if (!(action.sa_flags & SA_NODEFER))
        sigaddset(&mask, SIGSEGV);
    pthread_sigmask(SIG_BLOCK, &mask, &previous);
    if (action.sa_flags & SA_SIGINFO)
        action.sa_sigaction(signal, info, context);
    else
        action.sa_handler(signal);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
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
            errno = saved_errno;
            return;
        }
        stats_write();
        restore_default_and_return();
        errno = saved_errno;
        return;
    }
    chain_to_program(signal, info, context);
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
        if (dangling_page_recover(page))
            continue;
        stats_write();
        restore_default_and_return();
        raise(SIGSEGV);
        _exit(EXIT_DANGLING);
    }
    return true;
}

void signals_install(void)
{
    struct sigaction action, previous;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = segv_handler;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER | SA_RESTART;
    sigemptyset(&action.sa_mask);
    spin_lock_acquire(&action_lock);
    if (sys_sigaction(SIGSEGV, &action, &previous) == 0) {
        program_action = previous; /* a handler installed before us is chained, not lost */
        installed = true;
    }
    spin_lock_release(&action_lock);
}

EXPORTED int sigaction(int signal, const struct sigaction *action, struct sigaction *old)
{
    if (signal != SIGSEGV || !__atomic_load_n(&installed, __ATOMIC_ACQUIRE))
        return sys_sigaction(signal, action, old);
    spin_lock_acquire(&action_lock);
    if (old)
        *old = program_action;
    if (action)
        program_action = *action;
    spin_lock_release(&action_lock);
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
