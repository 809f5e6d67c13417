/*
 * thread_churn.c — a service that makes short-lived threads for ever: THREADS threads, at
 * most 4 alive at once, each calling handle() CALLS times (a few small allocations per call,
 * freed before it returns).  Knows nothing of arenashim; mark handle.
 *
 *     thread_churn THREADS CALLS
 *
 * Prints "OK thread_churn T C SUM".
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPAQUE(p) __asm__ volatile("" : : "g"(p) : "memory")

__attribute__((noinline)) unsigned long handle(unsigned seed)
{
    char *parts[8];
    unsigned long sum = 0;
    for (unsigned i = 0; i < 8; i++) {
        parts[i] = malloc(32 + (seed + i) % 200);
        memset(parts[i], (int)(seed + i), 16);
        OPAQUE(parts[i]);
        sum += (unsigned char)parts[i][3];
    }
    for (unsigned i = 0; i < 8; i++)
        free(parts[i]);
    return sum;
}

static unsigned calls;

static void *worker(void *arg)
{
    unsigned long sum = 0;
    for (unsigned i = 0; i < calls; i++)
        sum += handle((unsigned)(uintptr_t)arg + i);
    return (void *)sum;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: thread_churn THREADS CALLS\n");
        return 2;
    }
    unsigned threads = (unsigned)strtoul(argv[1], NULL, 10);
    calls = (unsigned)strtoul(argv[2], NULL, 10);
    unsigned long total = 0;
    for (unsigned done = 0; done < threads;) {
        pthread_t batch[4];
        unsigned n = threads - done < 4 ? threads - done : 4;
        for (unsigned i = 0; i < n; i++)
            if (pthread_create(&batch[i], NULL, worker, (void *)(uintptr_t)(done + i)) != 0)
                return 1;
        for (unsigned i = 0; i < n; i++) {
            void *sum;
            pthread_join(batch[i], &sum);
            total += (unsigned long)sum;
        }
        done += n;
    }
    printf("OK thread_churn %u %u %lu\n", threads, calls, total);
    return 0;
}
