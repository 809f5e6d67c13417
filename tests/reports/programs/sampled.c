/*
 * sampled.c — many escaping objects from one allocation site, for trace_allocs=N.
 *
 * handle_batch() (marker) runs BATCHES times; each call allocates ITEMS objects with
 * make_item() and keeps every one in a global table: all BATCHES * ITEMS objects escape.
 * After the batches, read_items() reads one object of each batch — object r of batch r, so
 * that with trace_allocs=64 (and BATCHES = 64, ITEMS odd mod 64) exactly one of the objects
 * read was sampled, whatever the phase of the sampling countdown — and then main frees
 * every object (frees after region end: each object is one escape, counted once).
 *
 * Each batch is its own region and starts on a page of its own, so each of the BATCHES reads
 * is one dangling access (with on_dangling=recover).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCHES 64
#define ITEMS 150
#define ITEM_SIZE 48

static char *items[BATCHES][ITEMS];

__attribute__((noinline, noipa)) static char *make_item(int batch, int i)
{
    char *item = malloc(ITEM_SIZE);
    if (item == NULL)
        abort();
    snprintf(item, ITEM_SIZE, "item %d.%d", batch, i);
    return item;
}

__attribute__((noinline, noipa)) static int handle_batch(int batch)
{
    int sum = 0;
    for (int i = 0; i < ITEMS; i++) {
        items[batch][i] = make_item(batch, i);
        sum += items[batch][i][5];
    }
    return sum;
}

__attribute__((noinline, noipa)) static long read_items(void)
{
    long sum = 0;
    for (int r = 0; r < BATCHES; r++) {
        volatile char *p = items[r][r % ITEMS];
        for (int k = 0; k < ITEM_SIZE && p[k]; k++)
            sum = sum * 31 + p[k];
    }
    return sum;
}

int main(void)
{
    long total = 0;
    for (int b = 0; b < BATCHES; b++)
        total += handle_batch(b);
    printf("batches %d, items %d, sum %ld\n", BATCHES, ITEMS, total);
    printf("read %ld\n", read_items());
    for (int b = 0; b < BATCHES; b++)
        for (int i = 0; i < ITEMS; i++)
            free(items[b][i]);
    printf("freed %d objects\n", BATCHES * ITEMS);
    return 0;
}
