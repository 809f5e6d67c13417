/* libexclprobe.c — a shared library that allocates on its caller's behalf (exclude tests). */
#include <stdlib.h>
#include <string.h>

void *exclprobe_alloc(size_t size)
{
    void *p = malloc(size);
    if (p)
        memset(p, 0x11, size);
    return p;
}
