/*
 * libmkloader.c — libmkloader.so: a library with a RUNPATH of its own ($ORIGIN/plugins)
 * that loads plugins by bare name, as plugin hosts do.  Knows nothing about arenashim.
 */
#include <dlfcn.h>
#include <stdio.h>

static int loads;

void *loader_open(const char *name)
{
    /* Not a tail call: dlopen must see this library as its caller. */
    void *handle = dlopen(name, RTLD_NOW);
    if (handle != NULL)
        loads++;
    return handle;
}
