/*
 * realloc_dead.c — realloc of an object whose region has ended.
 *
 * build() (marker) keeps an object made by make_buffer() in a global; after the region
 * ended, grow_buffer() reallocs it to a larger size (realloc must read the old object: under
 * arenashim that is a dangling access), appends to it and main prints it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *kept;

__attribute__((noinline, noipa)) static char *make_buffer(void)
{
    char *buffer = malloc(24);
    if (buffer == NULL)
        abort();
    strcpy(buffer, "hello realloc");
    return buffer;
}

__attribute__((noinline, noipa)) static void build(void)
{
    kept = make_buffer();
}

__attribute__((noinline, noipa)) static char *grow_buffer(char *p)
{
    char *q = realloc(p, 4000);
    if (q == NULL)
        abort();
    strcat(q, ", grown"); /* not a tail call: grow_buffer stays on the stack */
    return q;
}

int main(void)
{
    build();
    char *q = grow_buffer(kept);
    printf("%s\n", q);
    free(q);
    return 0;
}
