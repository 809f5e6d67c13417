/*
 * launched.c — a program started through launchers (sh -c, env, strace, gdb, scripts/arenashim).
 *
 *   launched [WORD...]
 *
 * An ordinary program: it knows nothing of arenashim.  It calls handle() 5 times and helper()
 * 3 times (the functions the tests mark: ARENASHIM_REGIONS=handle,helper), each allocating and
 * freeing a few objects, and prints
 *
 *   launched pid=PID
 *   args: WORD WORD ...          (its arguments, each in [brackets])
 *   launched: 5 calls, sum N
 *
 * Words it understands among its arguments:
 *   env      also print LD_PRELOAD, ARENASHIM_REGIONS and ARENASHIM_OPTIONS as it sees them
 *   dangle   keep an object handle() allocated and read it after the call returned (a dangling
 *            read under a marker on handle), printing "kept: STRING"
 *   exit=N   exit with status N
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *kept;

__attribute__((noinline)) long handle(int i, int keep)
{
    long sum = 0;
    char *objects[10];
    for (int k = 0; k < 10; k++) {
        objects[k] = malloc(32 + (size_t)k * 8);
        if (objects[k] == NULL)
            exit(3);
        snprintf(objects[k], 32, "request %d object %d", i, k);
        sum += (long)strlen(objects[k]);
    }
    if (keep && i == 0)
        kept = objects[3]; /* escapes the region of this call */
    else
        free(objects[3]);
    for (int k = 0; k < 10; k++)
        if (k != 3)
            free(objects[k]);
    return sum;
}

__attribute__((noinline)) long helper(int i)
{
    char *p = malloc(64);
    if (p == NULL)
        exit(3);
    long n = snprintf(p, 64, "helper %d", i);
    free(p);
    return n;
}

static void show(const char *name)
{
    const char *value = getenv(name);
    printf("%s=%s\n", name, value ? value : "(unset)");
}

int main(int argc, char **argv)
{
    int dangle = 0, status = 0;
    printf("launched pid=%d\nargs:", (int)getpid());
    for (int i = 1; i < argc; i++) {
        printf(" [%s]", argv[i]);
        if (strcmp(argv[i], "dangle") == 0)
            dangle = 1;
        else if (strncmp(argv[i], "exit=", 5) == 0)
            status = atoi(argv[i] + 5);
    }
    printf("\n");
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "env") == 0) {
            show("LD_PRELOAD");
            show("ARENASHIM_REGIONS");
            show("ARENASHIM_OPTIONS");
        }
    long sum = 0;
    for (int i = 0; i < 5; i++)
        sum += handle(i, dangle);
    for (int i = 0; i < 3; i++)
        sum += helper(i);
    if (dangle)
        printf("kept: %s\n", kept);
    printf("launched: 5 calls, sum %ld\n", sum);
    fflush(stdout);
    return status;
}
