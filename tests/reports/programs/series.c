/*
 * series.c — a run of a given length, for the statistics over time and the HTML report.
 *
 *   series SECONDS [keep]
 *
 * Until SECONDS have passed, main calls work_item(i) (a marker in the tests), which builds a
 * list of 1 to 2048 nodes of 48 bytes (so its regions fall in many size buckets), sums it and
 * frees it, and idle_item(i) (another marker), which allocates nothing: its regions are ended
 * untouched.  With "keep", one node in every 64th item is kept past its call in a global and
 * freed on the next such item: an object that escaped its region (freed after its end, never
 * read).  Prints the number of items and a checksum.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct node {
    struct node *next;
    long value;
    char pad[32];
};

static struct node *kept;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((noinline, noipa)) static struct node *make_node(long value, struct node *next)
{
    struct node *n = malloc(sizeof *n);
    if (n == NULL)
        abort();
    n->value = value;
    n->next = next;
    memset(n->pad, (int)value, sizeof n->pad);
    return n;
}

__attribute__((noinline, noipa)) static long work_item(long i, int keep)
{
    /* 1, 2, 4, ... 2048 nodes, cycling: sizes from 48 bytes to 96 KiB. */
    long count = 1L << (i % 12);
    struct node *list = NULL;
    for (long k = 0; k < count; k++)
        list = make_node(i + k, list);
    long sum = 0;
    for (struct node *n = list; n; n = n->next)
        sum += n->value;
    if (keep && i % 64 == 0) {
        free(kept); /* the one kept from an earlier call: escaped its region */
        kept = list;
        list = list->next;
        kept->next = NULL;
    }
    while (list) {
        struct node *next = list->next;
        free(list);
        list = next;
    }
    return sum;
}

__attribute__((noinline, noipa)) static long idle_item(long i)
{
    return i * 3 + 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: series SECONDS [keep]\n");
        return 2;
    }
    double seconds = atof(argv[1]);
    int keep = argc > 2 && strcmp(argv[2], "keep") == 0;
    double end = now() + seconds;
    unsigned long checksum = 0;
    long items = 0;
    while (now() < end) {
        for (int k = 0; k < 16; k++, items++) {
            checksum = checksum * 31 + (unsigned long)work_item(items, keep);
            checksum ^= (unsigned long)idle_item(items);
        }
    }
    free(kept);
    printf("%ld items, checksum %lx\n", items, checksum);
    return 0;
}
