/*
 * threads.c — several threads touch dangling objects at the same time.
 *
 * Each of THREADS threads runs thread_work() (marker) once, which keeps an object made by
 * make_slot() in a global slot; once every thread's region has ended (a barrier), all
 * threads touch their own dangling object at once: even threads read it (read_slot), odd
 * threads write it (write_slot).  With on_dangling=recover each touch is one report, and the
 * reports must not be interleaved.  main prints the results in thread order, so the output
 * does not depend on scheduling.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 4
#define SLOT_SIZE 64

static char *slots[THREADS];
static long results[THREADS];
static pthread_barrier_t barrier;

__attribute__((noinline, noipa)) static char *make_slot(int id)
{
    char *slot = malloc(SLOT_SIZE);
    if (slot == NULL)
        abort();
    memset(slot, 0, SLOT_SIZE);
    snprintf(slot, SLOT_SIZE, "slot of thread %d", id);
    return slot;
}

__attribute__((noinline, noipa)) static void thread_work(int id)
{
    char *scratch = malloc(200);
    if (scratch == NULL)
        abort();
    memset(scratch, id, 200);
    slots[id] = make_slot(id + scratch[10]);
    free(scratch);
}

__attribute__((noinline, noipa)) static long read_slot(int id)
{
    volatile char *p = slots[id];
    long sum = 0;
    for (int i = 0; i < SLOT_SIZE && p[i]; i++)
        sum = sum * 31 + p[i];
    return sum;
}

__attribute__((noinline, noipa)) static long write_slot(int id)
{
    volatile char *p = slots[id];
    p[0] = 'S';
    return p[0] + p[1];
}

static void *thread_main(void *arg)
{
    int id = (int)(long)arg;
    thread_work(id);
    pthread_barrier_wait(&barrier); /* every region has ended */
    results[id] = id % 2 ? write_slot(id) : read_slot(id);
    return NULL;
}

int main(void)
{
    pthread_t threads[THREADS];
    pthread_barrier_init(&barrier, NULL, THREADS);
    for (long i = 0; i < THREADS; i++)
        if (pthread_create(&threads[i], NULL, thread_main, (void *)i) != 0)
            return 1;
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    for (int i = 0; i < THREADS; i++)
        printf("thread %d: %ld\n", i, results[i]);
    return 0;
}
