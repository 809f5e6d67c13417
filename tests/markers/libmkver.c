/*
 * libmkver.c — libmkver.so, a library with a versioned function, like glibc's memcpy:
 * ver_fn@VER_1 (an old compatibility version, listed first) and ver_fn@@VER_2 (the default,
 * which programs linked now call).  A marker libmkver.so:ver_fn must hook the default one.
 * Built with libmkver.map.  Knows nothing about arenashim.
 */
#include <stdlib.h>

__attribute__((noinline, symver("ver_fn@@VER_2"))) long ver_fn_new(int n)
{
    long *p = malloc(sizeof(long) * 4);
    if (p == NULL)
        abort();
    for (int i = 0; i < 4; i++)
        p[i] = n + i;
    return p[0] + p[1] + p[2] + p[3];
}

__attribute__((noinline, symver("ver_fn@VER_1"))) long ver_fn_old(int n)
{
    return -n;
}
