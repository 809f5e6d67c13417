/*
 * libmkplugin.c — libmkplugin.so, loaded by dl.c with dlopen: markers of the form
 * MODULE:FUNC that resolve only after the dlopen.  Knows nothing about arenashim.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *volatile plugin_escaped;
/* Made by the constructor, which runs inside dlopen: read long after. */
static char *constructed;

/* Called by the constructor only: a marker on it opens a region inside dlopen, before
 * dlopen returns (markers resolve when the library is mapped, before constructors run). */
__attribute__((noinline)) int plugin_init_scratch(int count)
{
    int sum = 0;
    for (int i = 0; i < count; i++) {
        char *scratch = malloc(40);
        if (scratch == NULL)
            abort();
        memset(scratch, i, 40);
        sum += scratch[39];
        free(scratch);
    }
    return sum;
}

__attribute__((constructor)) static void plugin_init(void)
{
    constructed = malloc(100);
    if (constructed == NULL)
        abort();
    strcpy(constructed, plugin_init_scratch(5) == 10 ? "made by the constructor" : "bad sum");
}

const char *plugin_constructed(void)
{
    return constructed;
}

static __attribute__((noinline, noclone)) long plugin_static(int call, int count)
{
    long sum = 0;
    for (int i = 0; i < count; i++) {
        int *p = malloc(sizeof(int) * 8);
        if (p == NULL)
            abort();
        for (int k = 0; k < 8; k++)
            p[k] = call * 10 + i + k;
        for (int k = 0; k < 8; k++)
            sum += p[k];
    }
    return sum;
}

long plugin_work(int call, int count, int escape)
{
    long sum = 0;
    char *first = NULL;
    for (int i = 0; i < count; i++) {
        char *p = malloc(64 + i);
        if (p == NULL)
            abort();
        memset(p, 'a' + (call + i) % 26, 64 + i);
        if (first == NULL)
            first = p;
        for (int k = 0; k < 64 + i; k++)
            sum += p[k];
    }
    if (escape)
        plugin_escaped = first;
    return sum + plugin_static(call, 2);
}

/* "xor %eax,%eax; ret": too short to hook. */
__attribute__((noinline)) int plugin_short(void)
{
    return 0;
}
