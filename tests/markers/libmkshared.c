/*
 * libmkshared.c — libmkshared.so, linked into mt at start-up: an exported function of a
 * library (found through .dynsym) for the marker tests.  Knows nothing about arenashim.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Defined by mt; weak, so that libmkdep.so (which needs this library) loads into programs
 * that lack it. */
extern void *volatile escaped __attribute__((weak));

long shared_work(int call, int count, int escape)
{
    unsigned char *objects[64];
    if (count > 64)
        count = 64;
    long sum = 0;
    for (int i = 0; i < count; i++) {
        size_t size = 24 + (size_t)(i * 53) % 300;
        objects[i] = malloc(size);
        if (objects[i] == NULL)
            abort();
        for (size_t b = 0; b < size; b++)
            objects[i][b] = (unsigned char)(call + i * 3 + b);
    }
    for (int i = 0; i < count; i++) {
        size_t size = 24 + (size_t)(i * 53) % 300;
        for (size_t b = 0; b < size; b++) {
            if (objects[i][b] != (unsigned char)(call + i * 3 + b)) {
                fprintf(stderr, "shared_work: object %d byte %zu changed\n", i, b);
                _exit(3);
            }
            sum += objects[i][b];
        }
    }
    if (escape && count > 0 && &escaped != NULL) {
        escaped = objects[0];
        sum += ((volatile unsigned char *)escaped)[0] * 0;
    }
    return sum;
}
