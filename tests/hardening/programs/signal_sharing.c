/*
 * signal_sharing.c — a program that uses the signal arenashim's scan stops threads with
 * (SIGRTMAX - 2), or blocks every signal in its threads.  Knows nothing of arenashim; mark
 * work() and set a small quarantine_max so that scans happen while it runs.
 *
 *   signal_sharing own_handler      installs its own handler for SIGRTMAX-2, sends it to
 *                                   itself and its two worker threads 60 times while the
 *                                   workers call work(); prints how many times it ran, and
 *                                   whether sigaction reports its handler back
 *   signal_sharing blocked_workers  two workers block every signal (pthread_sigmask and
 *                                   sigprocmask), then call work() 3000 times each
 *   signal_sharing default_action   no handler: raise(SIGRTMAX-2) kills it, as the default
 *                                   action of a real-time signal does
 *   signal_sharing ignored          SIG_IGN, then raise(SIGRTMAX-2): nothing happens
 *
 * work(i) allocates 300 KiB in a few objects and frees them: region memory that scans find.
 * Prints "OK MODE ..." at the end.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OPAQUE(p) __asm__ volatile("" : : "g"(p) : "memory")

__attribute__((noinline)) unsigned long work(unsigned i)
{
    unsigned long sum = 0;
    for (unsigned k = 0; k < 4; k++) {
        char *p = malloc(75 << 10);
        memset(p, (int)(i + k), 64);
        OPAQUE(p);
        sum += (unsigned char)p[7];
        free(p);
    }
    return sum;
}

static int handled;
static volatile int stop_workers;
static int blocked_mode;

static void mine(int signal, siginfo_t *info, void *context)
{
    (void)signal;
    (void)info;
    (void)context;
    /* Handlers run in several threads at once (all at the same moment after a pause). */
    __atomic_fetch_add(&handled, 1, __ATOMIC_RELAXED);
}

static void *worker(void *arg)
{
    (void)arg;
    if (blocked_mode) {
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, NULL);
        sigprocmask(SIG_BLOCK, &all, NULL);
        unsigned long sum = 0;
        for (unsigned i = 0; i < 3000; i++)
            sum += work(i);
        return (void *)sum;
    }
    unsigned long sum = 0;
    for (unsigned i = 0; !stop_workers; i++)
        sum += work(i);
    return (void *)sum;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: signal_sharing MODE\n");
        return 2;
    }
    const char *mode = argv[1];
    int signal = SIGRTMAX - 2;
    if (strcmp(mode, "own_handler") == 0) {
        struct sigaction action, back;
        memset(&action, 0, sizeof action);
        action.sa_sigaction = mine;
        action.sa_flags = SA_SIGINFO | SA_RESTART;
        sigaction(signal, &action, NULL);
        sigaction(signal, NULL, &back);
        int reported = back.sa_sigaction == mine && (back.sa_flags & SA_SIGINFO);
        pthread_t threads[2];
        for (int i = 0; i < 2; i++)
            pthread_create(&threads[i], NULL, worker, NULL);
        int sent = 0;
        for (int round = 0; round < 20; round++) {
            raise(signal);
            pthread_kill(threads[0], signal);
            pthread_kill(threads[1], signal);
            sent += 3;
            usleep(2000);
        }
        stop_workers = 1;
        for (int i = 0; i < 2; i++)
            pthread_join(threads[i], NULL);
        usleep(10000);
        printf("OK own_handler sent %d handled %d sigaction-reports-it %d\n", sent, __atomic_load_n(&handled, __ATOMIC_RELAXED), reported);
        return 0;
    }
    if (strcmp(mode, "blocked_workers") == 0) {
        blocked_mode = 1;
        pthread_t threads[2];
        unsigned long total = 0;
        for (int i = 0; i < 2; i++)
            pthread_create(&threads[i], NULL, worker, NULL);
        for (int i = 0; i < 2; i++) {
            void *sum;
            pthread_join(threads[i], &sum);
            total += (unsigned long)sum;
        }
        printf("OK blocked_workers %lu\n", total);
        return 0;
    }
    if (strcmp(mode, "default_action") == 0) {
        work(1);
        fflush(stdout);
        raise(signal);
        printf("still alive\n");
        return 0;
    }
    if (strcmp(mode, "ignored") == 0) {
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_handler = SIG_IGN;
        sigaction(signal, &action, NULL);
        work(1);
        raise(signal);
        printf("OK ignored\n");
        return 0;
    }
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
