/*
 * first_free_thread.c — a thread whose first and only heap call is a free.
 *
 *     first_free_thread ROUNDS
 *
 * Each round the main thread sorts 150000 words with qsort (glibc's merge sort mallocs a
 * 1.2 MB buffer and frees it, which leaves jemalloc a free extent next to the block made
 * after it), allocates a 16 KiB block, and starts a thread that frees it: that thread's
 * first call into the heap, which merges the block's extent with its free neighbour.  Under
 * arenashim the thread waited for a lock it held itself, for ever (found by tests/peer:
 * Python's test_faulthandler, whose C thread frees the alternate signal stack).  Prints
 * "OK first_free_thread ROUNDS".
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define WORDS 150000

static int compare_words(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static void *free_block(void *block)
{
    free(block);
    return NULL;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 10;
    uintptr_t *words = calloc(WORDS, sizeof *words);
    if (words == NULL)
        return 3;
    for (int round = 0; round < rounds; round++) {
        for (size_t i = 0; i < WORDS; i++)
            words[i] = (i * 2654435761u + (unsigned)round) % 1000003;
        qsort(words, WORDS, sizeof *words, compare_words);
        void *block = malloc(16880);
        pthread_t thread;
        if (block == NULL || pthread_create(&thread, NULL, free_block, block) != 0 ||
            pthread_join(thread, NULL) != 0)
            return 3;
    }
    free(words);
    printf("OK first_free_thread %d\n", rounds);
    return 0;
}
