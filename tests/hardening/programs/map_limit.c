/*
 * map_limit.c — a program that uses up its kernel mappings (vm.max_map_count) and then calls
 * work() 5000 times, each call allocating and freeing 20 objects.  Knows nothing of
 * arenashim; mark work: region memory cannot be had, and the program must go on exactly as
 * it does plainly.
 *
 *     map_limit LEAVE     leave about LEAVE mappings free (0: none)
 *
 * Prints "OK map_limit SUM".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define OPAQUE(p) __asm__ volatile("" : : "g"(p) : "memory")

__attribute__((noinline)) unsigned long work(unsigned i)
{
    unsigned long sum = 0;
    for (unsigned k = 0; k < 20; k++) {
        unsigned char *p = malloc(5000 + k * 300);
        memset(p, (int)(i + k), 100);
        OPAQUE(p);
        sum += p[5];
        free(p);
    }
    return sum;
}

static long count_mappings(void)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[512];
    long lines = 0;
    while (maps && fgets(line, sizeof line, maps))
        lines++;
    if (maps)
        fclose(maps);
    return lines;
}

int main(int argc, char **argv)
{
    long leave = argc > 1 ? atol(argv[1]) : 0;
    long max = 0;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f == NULL || fscanf(f, "%ld", &max) != 1)
        return 3;
    fclose(f);
    /* Every other page of one reservation made readable: each one two more mappings. */
    long want = (max - count_mappings() - leave) / 2 + 1;
    char *area = mmap(NULL, (size_t)want * 2 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (area == MAP_FAILED)
        return 3;
    for (long i = 0; i < want; i++)
        if (mprotect(area + i * 2 * 4096, 4096, PROT_READ) != 0)
            break;
    unsigned long sum = 0;
    for (unsigned i = 0; i < 5000; i++)
        sum += work(i);
    printf("OK map_limit %lu\n", sum);
    return 0;
}
