/*
 * late_free.c — objects freed after their region ended.
 *
 *   late_free [twice]
 *
 * build_lists() (marker) runs ROUNDS times; each call keeps NODES objects from make_node()
 * and LABELS objects from make_label() in global tables.  After the rounds main frees them
 * all; with "twice" it frees every one a second time (only sensible under arenashim, whose
 * free of a dead object touches no memory: a plain run would abort on the double free).
 * Nothing is read or written after its region ended: there is no dangling access.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUNDS 4
#define NODES 5
#define LABELS 3

static void *nodes[ROUNDS][NODES];
static char *labels[ROUNDS][LABELS];

__attribute__((noinline, noipa)) static void *make_node(int round, int i)
{
    long *node = malloc(4 * sizeof(long));
    if (node == NULL)
        abort();
    node[0] = round;
    node[1] = i;
    return node;
}

__attribute__((noinline, noipa)) static char *make_label(int round, int i)
{
    char *label = malloc(24);
    if (label == NULL)
        abort();
    snprintf(label, 24, "label %d.%d", round, i);
    return label;
}

__attribute__((noinline, noipa)) static long build_lists(int round)
{
    long sum = 0;
    for (int i = 0; i < NODES; i++) {
        nodes[round][i] = make_node(round, i);
        sum += ((long *)nodes[round][i])[1];
    }
    for (int i = 0; i < LABELS; i++) {
        labels[round][i] = make_label(round, i);
        sum += (long)strlen(labels[round][i]);
    }
    return sum;
}

__attribute__((noinline, noipa)) static void free_all(void)
{
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < NODES; i++)
            free(nodes[r][i]);
        for (int i = 0; i < LABELS; i++)
            free(labels[r][i]);
    }
}

int main(int argc, char **argv)
{
    long sum = 0;
    for (int r = 0; r < ROUNDS; r++)
        sum += build_lists(r);
    free_all();
    if (argc > 1 && strcmp(argv[1], "twice") == 0)
        free_all();
    printf("built %d rounds: %ld\n", ROUNDS, sum);
    return 0;
}
