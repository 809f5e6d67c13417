/*
 * segv_chain.c — a program's own SIGSEGV handling must keep working under arenashim.
 *
 *   segv_chain sigaction     SA_SIGINFO handler, then a NULL dereference: the handler runs,
 *                            sees si_addr == 0 and exits 42
 *   segv_chain wild          SA_SIGINFO handler, then a write to an unmapped page: the handler
 *                            runs, sees that address, exits 42
 *   segv_chain signal        handler installed with signal(): runs, exits 43
 *   segv_chain query         sigaction(SIGSEGV, NULL, &old) reports the program's handler and
 *                            flags back; signal() returns the previous handler
 *   segv_chain resethand     SA_RESETHAND handler that returns: the handler runs once, then the
 *                            default action kills the process by SIGSEGV
 *   segv_chain longjmp       the handler siglongjmps out; a second fault is handled again
 *   segv_chain default       no handler: the process dies by SIGSEGV
 *   segv_chain raise         a handler, then raise(SIGSEGV): the handler runs (si_code SI_TKILL)
 *   segv_chain overflow      a stack overflow with a handler on an alternate stack (sigaltstack):
 *                            the handler runs and exits 45
 *   segv_chain thread        SA_SIGINFO handler, NULL dereference on a second thread: exits 42
 *   segv_chain region        as wild, with a region open and region objects live: not a dangling
 *                            access, so the program's handler runs
 *
 * The first stderr line says whether arenashim's API is there: "(shim loaded)" or "(no shim)".
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "testutil.h"

static void *volatile expected_address;
static sigjmp_buf jump_back;
static volatile int handled;

static void say(const char *text)
{
    ssize_t ignored = write(1, text, strlen(text));
    (void)ignored;
}

static void info_handler(int sig, siginfo_t *info, void *context)
{
    (void)context;
    if (sig == SIGSEGV && info->si_addr == expected_address)
        say("handler ran with the fault address\n");
    else
        say("handler ran with a WRONG address\n");
    _exit(42);
}

static void plain_handler(int sig)
{
    say(sig == SIGSEGV ? "plain handler ran\n" : "plain handler: wrong signal\n");
    _exit(43);
}

static void returning_handler(int sig)
{
    (void)sig;
    say("returning handler ran\n");
    handled++;
}

static void jumping_handler(int sig, siginfo_t *info, void *context)
{
    (void)sig;
    (void)info;
    (void)context;
    handled++;
    siglongjmp(jump_back, 1);
}

static void raise_handler(int sig, siginfo_t *info, void *context)
{
    (void)context;
    say(sig == SIGSEGV && info->si_code == SI_TKILL ? "raise handler ran\n" : "raise handler: wrong info\n");
    _exit(44);
}

static void overflow_handler(int sig, siginfo_t *info, void *context)
{
    (void)info;
    (void)context;
    say(sig == SIGSEGV ? "overflow handler ran\n" : "overflow handler: wrong signal\n");
    _exit(45);
}

static __attribute__((noinline)) int recurse(volatile char *previous, int depth)
{
    volatile char frame[4096];
    frame[0] = (char)depth;
    frame[4095] = previous ? previous[0] : 0;
    return recurse(frame, depth + 1) + frame[100];
}

static void *null_reader(void *arg)
{
    (void)arg;
    expected_address = NULL;
    volatile int *p = opaque_ptr(NULL);
    return (void *)(intptr_t)*p;
}

static void *unmapped_page(void)
{
    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(page, 4096);
    return page;
}

static void install_info_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = info_handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, NULL) != 0)
        say("sigaction failed\n");
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "sigaction";
    /* On stderr, so that stdout stays the same with and without the shim. */
    fputs(shim_present() ? "(shim loaded)\n" : "(no shim)\n", stderr);
    if (strcmp(mode, "sigaction") == 0) {
        install_info_handler();
        expected_address = NULL;
        volatile int *p = opaque_ptr(NULL);
        return *p;
    }
    if (strcmp(mode, "wild") == 0 || strcmp(mode, "region") == 0) {
        install_info_handler();
        char *live = NULL;
        if (strcmp(mode, "region") == 0) {
            region_begin();
            live = malloc(1000);
            memset(live, 1, 1000);
            if (shim_present() && !in_region(live))
                say("not a region object\n");
        }
        volatile int *p = unmapped_page();
        expected_address = (void *)p;
        *p = 1;
        say("no fault\n");
        return 1;
    }
    if (strcmp(mode, "signal") == 0) {
        if (signal(SIGSEGV, plain_handler) == SIG_ERR)
            say("signal failed\n");
        volatile int *p = opaque_ptr((void *)16);
        return *p;
    }
    if (strcmp(mode, "query") == 0) {
        struct sigaction old;
        memset(&old, 0xff, sizeof old);
        int bad = 0;
        if (sigaction(SIGSEGV, NULL, &old) != 0 || old.sa_handler != SIG_DFL) {
            say("initial SIGSEGV action is not SIG_DFL\n");
            bad++;
        }
        install_info_handler();
        memset(&old, 0, sizeof old);
        if (sigaction(SIGSEGV, NULL, &old) != 0) {
            say("query failed\n");
            bad++;
        }
        if (old.sa_sigaction != info_handler || !(old.sa_flags & SA_SIGINFO)) {
            say("query does not report the program's handler\n");
            bad++;
        }
        sighandler_t previous = signal(SIGSEGV, plain_handler);
        if ((void *)previous != (void *)info_handler) {
            say("signal() does not return the previous handler\n");
            bad++;
        }
        previous = signal(SIGSEGV, SIG_DFL);
        if (previous != plain_handler) {
            say("signal() does not return plain_handler\n");
            bad++;
        }
        memset(&old, 0, sizeof old);
        sigaction(SIGSEGV, NULL, &old);
        if (old.sa_handler != SIG_DFL) {
            say("SIG_DFL not reported back\n");
            bad++;
        }
        /* Other signals are untouched. */
        signal(SIGUSR1, returning_handler);
        raise(SIGUSR1);
        if (handled != 1) {
            say("SIGUSR1 handler did not run\n");
            bad++;
        }
        say(bad ? "query FAILED\n" : "query OK\n");
        return bad ? 1 : 0;
    }
    if (strcmp(mode, "resethand") == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = returning_handler;
        sa.sa_flags = SA_RESETHAND;
        sigaction(SIGSEGV, &sa, NULL);
        volatile int *p = opaque_ptr(NULL);
        return *p; /* handler runs, returns, the fault repeats with the default action */
    }
    if (strcmp(mode, "longjmp") == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = jumping_handler;
        sa.sa_flags = SA_SIGINFO | SA_NODEFER;
        sigaction(SIGSEGV, &sa, NULL);
        for (int i = 0; i < 3; i++) {
            if (sigsetjmp(jump_back, 1) == 0) {
                volatile int *p = opaque_ptr(NULL);
                *p = i;
                say("no fault\n");
                return 1;
            }
        }
        say(handled == 3 ? "longjmp OK\n" : "longjmp count wrong\n");
        return handled == 3 ? 0 : 1;
    }
    if (strcmp(mode, "overflow") == 0) {
        static char alternate[64 << 10];
        stack_t ss = { .ss_sp = alternate, .ss_size = sizeof alternate, .ss_flags = 0 };
        sigaltstack(&ss, NULL);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = overflow_handler;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigaction(SIGSEGV, &sa, NULL);
        return recurse(NULL, 0);
    }
    if (strcmp(mode, "thread") == 0) {
        install_info_handler();
        pthread_t thread;
        pthread_create(&thread, NULL, null_reader, NULL);
        pthread_join(thread, NULL);
        say("no fault\n");
        return 1;
    }
    if (strcmp(mode, "default") == 0) {
        volatile int *p = opaque_ptr(NULL);
        return *p;
    }
    if (strcmp(mode, "raise") == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = raise_handler;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGSEGV, &sa, NULL);
        raise(SIGSEGV);
        say("raise returned\n");
        return 1;
    }
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
