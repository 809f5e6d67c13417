/*
 * api_program.c — a user's program built against the installed arenashim.h, as the
 * install suite (tests/install/run.py) compiles it: `cc $(pkg-config --cflags arenashim)`,
 * with nothing to link, since every function of the API is weak.
 *
 * It runs 100 calls of handle() (a marker's target: each builds and frees a list) and one
 * region of its own through the API when the API is there, then prints what a user would
 * check: whether the API resolved, where the library it runs with was loaded from (from
 * /proc/self/maps), and a checksum of the work, which must not depend on arenashim.
 */
#include <arenashim.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node {
    struct node *next;
    unsigned value;
};

__attribute__((noinline)) unsigned handle(unsigned seed)
{
    struct node *head = NULL;
    for (unsigned i = 0; i < 50; i++) {
        struct node *n = malloc(sizeof *n + (i * 7 + seed) % 200);
        if (n == NULL)
            abort();
        n->value = seed * 31 + i;
        n->next = head;
        head = n;
    }
    unsigned sum = 0;
    while (head != NULL) {
        struct node *next = head->next;
        sum += head->value;
        free(head);
        head = next;
    }
    return sum;
}

static void print_library_path(void)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[4096];
    while (maps != NULL && fgets(line, sizeof line, maps) != NULL) {
        char *path = strchr(line, '/');
        if (path != NULL && strstr(path, "libarenashim.so") != NULL) {
            printf("library: %s", path);
            fclose(maps);
            return;
        }
    }
    if (maps != NULL)
        fclose(maps);
    printf("library: none\n");
}

int main(void)
{
    unsigned sum = 0;
    for (unsigned i = 0; i < 100; i++)
        sum += handle(i);
    if (arenashim_region_begin != NULL) {
        arenashim_region_begin();
        char *text = strdup("inside a region of the program's own");
        printf("region text: %s\n", text);
        arenashim_region_end();
        printf("api: present\n");
    } else {
        printf("api: absent\n");
    }
    print_library_path();
    printf("checksum: %u\n", sum);
    return 0;
}
