/*
 * fault_handler.c — SIGSEGV: dangling accesses to faulted region memory, and chaining.
 *
 * Layer: preload.  arenashim owns the process's real SIGSEGV disposition.  A fault whose
 * address lies in faulted region memory is reported (the brief's first line, the access
 * backtrace, where its region began and ended); then, with on_dangling=abort, the default
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
#include "hook.h"
#include "stack_table.h"
#include "trace_log.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>

/* glibc's own entry point, reached without going through our sigaction. */
extern int __sigaction(int signal, const struct sigaction *action, struct sigaction *old);

static struct sigaction program_action; /* what the program believes is installed */
static spin_lock report_buffer_lock = SPIN_LOCK_INIT;
static spin_lock escaped_free_lock = SPIN_LOCK_INIT;
static bool installed;
static spin_lock action_lock = SPIN_LOCK_INIT;

static bool is_write_fault(const ucontext_t *context)
{
#if defined(__x86_64__)
    return (context->uc_mcontext.gregs[REG_ERR] & 2) != 0;
#else
    (void)context;
    return false;
#endif
}

static void report_region_site(struct report *report, const char *what, uint32_t stack, uintptr_t pc)
{
    report_string(report, what);
    if (stack_table_get(stack))
        report_stack(report, stack);
    else
        report_frame_at(report, 0, pc, true); /* the return address of the begin/end call */
}

static void report_dangling(const struct dangling_info *info, ucontext_t *context, uint32_t site,
                            bool write)
{
    static struct report report; /* static: the fault may come on a small alternate stack */
    spin_lock_acquire(&report_buffer_lock);
    report_init(&report);
    report_string(&report, "==");
    report_decimal(&report, (uint64_t)getpid());
    report_string(&report, "==ERROR: arenashim: use-after-region-free on address ");
    report_hex(&report, info->address);
    report_string(&report, write ? " (WRITE of region #" : " (READ of region #");
    report_decimal(&report, info->found_range ? info->range.region_id : 0);
    report_string(&report, ", marker '");
    report_string(&report, info->found_range ? marker_name(info->range.marker) : "(unknown)");
    report_string(&report, "')\n");
    report_string(&report, "  access backtrace:\n");
    /* Unwinders cannot step through the exit stub: give them the real return addresses. */
    bool hooked = hook_shadow && hook_shadow->depth;
    if (hooked)
        shadow_restore_return_addresses();
    /* From a system-call guard (no signal context) our own frames come first: skip them. */
    report_backtrace(&report, context, context ? 0 : 3);
    if (hooked)
        shadow_reinstall_all();
    if (info->found_range) {
        const struct dead_range *r = &info->range;
        report_string(&report, "  the address is ");
        report_decimal(&report, info->address - r->start);
        report_string(&report, " bytes into the memory of region #");
        report_decimal(&report, r->region_id);
        report_string(&report, " [");
        report_hex(&report, r->start);
        report_string(&report, ", ");
        report_hex(&report, r->end);
        report_string(&report, ") of thread T");
        report_decimal(&report, r->thread_number);
        report_string(&report, "\n");
        const struct trace_record *object = trace_log_find(r->trace, info->address);
        if (object) {
            report_string(&report, "  it is ");
            report_decimal(&report, info->address - object->address);
            report_string(&report, " bytes into an object of ");
            report_decimal(&report, object->size);
            report_string(&report, " bytes at ");
            report_hex(&report, object->address);
            report_string(&report, ", allocated at:\n");
            report_stack(&report, site ? site : object->stack);
        } else {
            report_string(&report, core.options.trace_allocs
                                       ? "  allocation site: not sampled (trace_allocs=N traces one in N)\n"
                                       : "  allocation site: not recorded (run with trace_allocs=1)\n");
        }
        report_region_site(&report, "  region began at:\n", r->begin_stack, r->begin_pc);
        report_region_site(&report, "  region ended at:\n", r->end_stack, r->end_pc);
    }
    report_string(&report, "==");
    report_decimal(&report, (uint64_t)getpid());
    report_string(&report, core.options.on_dangling == ON_DANGLING_ABORT
                               ? "==ABORTING (on_dangling=abort)\n"
                               : "==CONTINUING (on_dangling=recover: the page is accessible again)\n");
    report_emit(&report);
    spin_lock_release(&report_buffer_lock);
}

static void restore_default_and_return(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = SIG_DFL;
    sigemptyset(&action.sa_mask);
    __sigaction(SIGSEGV, &action, NULL);
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
    struct dangling_info dangling;
    if (info->si_code > 0 && dangling_lookup((uintptr_t)info->si_addr, &dangling)) {
        stats_add(&core.counters.dangling_accesses, 1);
        bool first;
        uint32_t site = escape_note((uintptr_t)info->si_addr, ESCAPE_ACCESS, &first);
        report_dangling(&dangling, context, site, is_write_fault(context));
        if (core.options.on_dangling == ON_DANGLING_RECOVER) {
            uintptr_t page = (uintptr_t)info->si_addr & ~(PAGE_SIZE_BYTES - 1);
            if (mprotect((void *)page, PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE) == 0) {
                errno = saved_errno;
                return;
            }
        }
        shim_write_stats();
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
        if (core.options.on_dangling == ON_DANGLING_RECOVER &&
            process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == 1)
            continue;
        stats_add(&core.counters.dangling_accesses, 1);
        bool first;
        uint32_t site = escape_note(address, ESCAPE_ACCESS, &first);
        report_dangling(&dangling, NULL, site, write);
        if (core.options.on_dangling == ON_DANGLING_RECOVER &&
            mprotect((void *)page, PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE) == 0)
            continue;
        shim_write_stats();
        restore_default_and_return();
        raise(SIGSEGV);
        _exit(139);
    }
    return true;
}

void fault_handler_install(void)
{
    struct sigaction action, previous;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = segv_handler;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER | SA_RESTART;
    sigemptyset(&action.sa_mask);
    spin_lock_acquire(&action_lock);
    if (__sigaction(SIGSEGV, &action, &previous) == 0) {
        program_action = previous; /* a handler installed before us is chained, not lost */
        installed = true;
    }
    spin_lock_release(&action_lock);
}

SHIM_EXPORT int sigaction(int signal, const struct sigaction *action, struct sigaction *old)
{
    if (signal != SIGSEGV || !__atomic_load_n(&installed, __ATOMIC_ACQUIRE))
        return __sigaction(signal, action, old);
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
SHIM_EXPORT sighandler_t signal(int signal, sighandler_t handler)
{
    return set_program_handler(signal, handler, SA_RESTART, true);
}

SHIM_EXPORT sighandler_t bsd_signal(int signal, sighandler_t handler) __attribute__((alias("signal"), copy(signal)));

SHIM_EXPORT sighandler_t sysv_signal(int signal, sighandler_t handler)
{
    return set_program_handler(signal, handler, SA_RESETHAND | SA_NODEFER, false);
}

/* free() of an object whose region has ended: with verbose, one report per allocation site
 * (or one in all, when allocations are not traced). */
static void report_escaped_free(uintptr_t address)
{
    static uint32_t reported_sites[256];
    static unsigned reported_count;
    static int reported_untraced;
    static struct report report;
    spin_lock *lock = &escaped_free_lock;
    if (core.options.verbose == 0)
        return;
    struct dangling_info info;
    if (!dangling_lookup(address, &info) || !info.found_range)
        return;
    const struct trace_record *object = trace_log_find(info.range.trace, address);
    uint32_t site = object ? object->stack : 0;
    spin_lock_acquire(lock);
    bool seen = false;
    if (site) {
        for (unsigned i = 0; i < reported_count && !seen; i++)
            seen = reported_sites[i] == site;
        if (!seen && reported_count < 256)
            reported_sites[reported_count++] = site;
    } else {
        seen = reported_untraced++ > 0;
    }
    if (!seen) {
        report_init(&report);
        report_string(&report, "arenashim: free() of ");
        report_hex(&report, address);
        report_string(&report, " after its region #");
        report_decimal(&report, info.range.region_id);
        report_string(&report, " (marker '");
        report_string(&report, marker_name(info.range.marker));
        report_string(&report, "') ended: the object escaped its region");
        if (site) {
            report_string(&report, "; allocated at:\n");
            report_stack(&report, site);
        } else {
            report_string(&report, " (reported once; run with trace_allocs=1 to see allocation sites)\n");
        }
        report_emit(&report);
    }
    spin_lock_release(lock);
}

void fault_handler_fork_child(void)
{
    spin_lock_reset(&action_lock);
    spin_lock_reset(&report_buffer_lock);
    spin_lock_reset(&escaped_free_lock);
}

void fault_handler_set_escape_hook(void)
{
    core.escape_hook = report_escaped_free;
}
