/*
 * own_thread.c — arenashim's own threads: the collector and the marking helpers.
 *
 * Layer: preload, lib.  A thread of arenashim's must never receive the program's signals: a
 * process-directed signal (SIGINT, SIGCHLD, SIGALRM...) goes to any thread that does not block
 * it, and a handler of the program's running on our thread would surprise it (and could not
 * be stopped for a scan).  So the thread is made with every asynchronous signal blocked in the
 * creating thread's mask, which it inherits; the synchronous ones stay open (a blocked SIGSEGV
 * would kill the process on the first fault instead of reaching arenashim's handler).
 */
#include "own_thread.h"

#include <pthread.h>
#include <signal.h>

bool own_thread_start(void *(*main)(void *), void *arg, size_t stack_bytes, uintptr_t *stack_low,
                      uintptr_t *stack_high)
{
    sigset_t asynchronous, previous;
    sigfillset(&asynchronous);
    sigdelset(&asynchronous, SIGSEGV);
    sigdelset(&asynchronous, SIGBUS);
    sigdelset(&asynchronous, SIGILL);
    sigdelset(&asynchronous, SIGFPE);
    sigdelset(&asynchronous, SIGTRAP);
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return false;
    pthread_attr_setstacksize(&attr, stack_bytes);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    pthread_sigmask(SIG_SETMASK, &asynchronous, &previous);
    bool made = pthread_create(&thread, &attr, main, arg) == 0;
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    pthread_attr_destroy(&attr);
    if (made && (stack_low || stack_high)) {
        void *stack = NULL;
        size_t size = 0;
        pthread_attr_t actual;
        if (pthread_getattr_np(thread, &actual) == 0) {
            pthread_attr_getstack(&actual, &stack, &size);
            pthread_attr_destroy(&actual);
        }
        if (stack_low)
            *stack_low = (uintptr_t)stack;
        if (stack_high)
            *stack_high = (uintptr_t)stack + size;
    }
    return made;
}
