/*
 * leak.c — an unaware program whose marked function leaks one object into a global.
 *
 * handle_request() is the function a user marks (ARENASHIM_REGIONS=handle_request).  It
 * runs REQUESTS times; every call gets a name from make_name() and frees it, except call
 * LEAKED_REQUEST, which keeps its name in the global last_name.  After the requests,
 * print_last_name() reads (and rewrites) that object ROUNDS times, and main frees it at the
 * end.  Under arenashim the first read is a dangling access; with on_dangling=recover the
 * program must print exactly what it prints without arenashim.
 *
 * No arenashim.h: the program knows nothing of arenashim.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUESTS 10
#define LEAKED_REQUEST 7
#define ROUNDS 20
#define NAME_SIZE 32

static char *last_name;

__attribute__((noinline, noipa)) static char *make_name(int id)
{
    char *name = malloc(NAME_SIZE); /* called from here, not from libc: a region object */
    if (name == NULL)
        abort();
    snprintf(name, NAME_SIZE, "request-%d", id);
    return name;
}

__attribute__((noinline, noipa)) static int handle_request(int id)
{
    char *scratch = malloc(100);
    if (scratch == NULL)
        abort();
    memset(scratch, 'a' + id, 100);
    char *name = make_name(id);
    int sum = scratch[3] + (int)strlen(name);
    free(scratch);
    if (id == LEAKED_REQUEST)
        last_name = name; /* the escape */
    else
        free(name);
    return sum;
}

__attribute__((noinline, noipa)) static void print_last_name(int round)
{
    volatile char *p = last_name;
    char copy[NAME_SIZE];
    for (int i = 0; i < NAME_SIZE - 1; i++)
        copy[i] = p[i]; /* the dangling READ: this function, not libc, touches it */
    copy[NAME_SIZE - 1] = '\0';
    p[NAME_SIZE - 1] = (char)round; /* touched again, now a write */
    printf("round %d: last name %s (%d)\n", round, copy, (int)p[NAME_SIZE - 1]);
}

int main(void)
{
    long total = 0;
    for (int i = 0; i < REQUESTS; i++)
        total += handle_request(i);
    printf("total %ld\n", total);
    for (int round = 0; round < ROUNDS; round++)
        print_last_name(round);
    free(last_name);
    printf("done\n");
    return 0;
}
