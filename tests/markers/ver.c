/*
 * ver.c — calls ver_fn of libmkver.so (the default version, VER_2).  Knows nothing about
 * arenashim.  Usage: ver N
 */
#include <stdio.h>
#include <stdlib.h>

long ver_fn(int n);

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 10;
    long total = 0;
    for (int i = 0; i < n; i++)
        total += ver_fn(i);
    printf("ver calls=%d total=%ld\n", n, total);
    return 0;
}
