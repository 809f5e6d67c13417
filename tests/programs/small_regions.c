/*
 * small_regions.c — many small regions doing real work; the output must not depend on the
 * allocator (the runner compares it with a run without arenashim).
 *
 *   small_regions [COUNT]
 *
 * Each region builds a linked list of strings, sorts and hashes it; one string per region is
 * kept past the region through arenashim_heapify (a plain copy without the shim).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

struct item {
    struct item *next;
    char *text;
    unsigned value;
};

static int compare_items(const void *a, const void *b)
{
    const struct item *x = *(struct item *const *)a, *y = *(struct item *const *)b;
    int c = strcmp(x->text, y->text);
    return c ? c : (x->value > y->value) - (x->value < y->value);
}

static uint64_t hash_text(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int main(int argc, char **argv)
{
    int count = argc > 1 ? atoi(argv[1]) : 20000;
    uint64_t h = 1469598103934665603ull;
    uint64_t rng = 88172645463325252ull;
    enum { KEEP = 64 };
    char *kept[KEEP] = { 0 };
    unsigned long total_items = 0;
    for (int r = 0; r < count; r++) {
        region_begin();
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        unsigned n = 1 + (unsigned)(rng % 24);
        struct item *head = NULL;
        for (unsigned i = 0; i < n; i++) {
            struct item *it = malloc(sizeof *it);
            char buf[64];
            snprintf(buf, sizeof buf, "r%d-i%u-%llu", r % 97, i, (unsigned long long)(rng % (i + 3)));
            it->text = strdup(buf);
            it->value = (unsigned)(rng >> (i % 32));
            it->next = head;
            head = it;
        }
        struct item **array = calloc(n, sizeof *array);
        unsigned k = 0;
        for (struct item *it = head; it; it = it->next)
            array[k++] = it;
        qsort(array, n, sizeof *array, compare_items);
        for (unsigned i = 0; i < n; i++) {
            h = hash_text(h, array[i]->text);
            h ^= array[i]->value;
        }
        total_items += n;
        if (r % 313 == 0) {
            int slot = (r / 313) % KEEP;
            free(kept[slot]);
            char *copy = arenashim_heapify ? arenashim_heapify(array[0]->text) : strdup(array[0]->text);
            if (arenashim_heapify && copy == array[0]->text) {
                printf("heapify returned the region object itself\n");
                return 1;
            }
            kept[slot] = copy;
        }
        free(array);
        region_end();
    }
    for (int i = 0; i < KEEP; i++)
        if (kept[i]) {
            h = hash_text(h, kept[i]);
            free(kept[i]);
        }
    printf("regions %d items %lu hash %016llx\n", count, total_items, (unsigned long long)h);
    return 0;
}
