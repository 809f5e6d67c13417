/*
 * soak_plugin.c — libsoakplugin.so, the library soak.c loads and unloads every cycle.  Its one
 * function, soak_plugin_work, is what ARENASHIM_REGIONS marks (libsoakplugin.so:
 * soak_plugin_work): each load puts it at a new address, so the marker must be hooked again
 * after every dlopen for its calls to open regions.  Knows nothing of arenashim.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define OPAQUE(p) __asm__ volatile("" : : "g"(p) : "memory")

/* A small linked list of strings, built, summed and freed: a handler's work. */
__attribute__((noinline, visibility("default"))) uint64_t soak_plugin_work(unsigned seed)
{
    struct node {
        struct node *next;
        char text[40];
    } *head = NULL;
    unsigned count = 8 + seed % 24;
    for (unsigned i = 0; i < count; i++) {
        struct node *n = malloc(sizeof *n);
        if (n == NULL)
            abort();
        n->next = head;
        memset(n->text, 'a' + (int)((seed + i) % 26), sizeof n->text - 1);
        n->text[sizeof n->text - 1] = '\0';
        head = n;
    }
    OPAQUE(head);
    uint64_t sum = 0;
    while (head) {
        struct node *next = head->next;
        sum = sum * 31 + (unsigned char)head->text[seed % 39];
        free(head);
        head = next;
    }
    return sum;
}
