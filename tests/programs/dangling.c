/*
 * dangling.c — accesses to region memory after its region ended.
 *
 *   dangling KIND ACCESS
 *     KIND    region | arena | large | nested | handler
 *             (thread: the access comes from another thread;
 *              handler: the program has its own SIGSEGV handler installed;
 *              nested: an inner region's object, accessed while the outer one is open)
 *     ACCESS  read | write | two (reads two dead objects on different pages) | none | free (free after the end: an escaped free, no access)
 *             | realloc (realloc of a dead object reads its header: a dangling READ)
 *
 * With ACCESS none or free the program must exit 0.  Otherwise arenashim must report the
 * access (first stderr line) and kill the process with SIGSEGV, or with on_dangling=recover
 * let it go on: then it prints what it read, the same as without arenashim.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

/* Without the shim nothing is a region object; with it, the object under test must be one.
 * Silent when it holds, so that stdout is the same with and without arenashim. */
static void expect_region_object(const volatile void *p)
{
    if (shim_present() && !in_region((const void *)p)) {
        printf("NOT A REGION OBJECT: %p\n", (const void *)p);
        exit(3);
    }
}

static void own_handler(int sig)
{
    static const char text[] = "program handler ran\n";
    (void)sig;
    ssize_t ignored = write(1, text, sizeof text - 1);
    (void)ignored;
    _exit(42);
}

struct access_job {
    const char *access;
    volatile char *p;
};

static void *access_from_thread(void *arg)
{
    struct access_job *job = arg;
    if (strcmp(job->access, "read") == 0)
        printf("thread read '%c'\n", job->p[0]);
    else if (strcmp(job->access, "write") == 0)
        job->p[1] = 'T';
    return NULL;
}

int main(int argc, char **argv)
{
    const char *kind = argc > 1 ? argv[1] : "region";
    const char *access = argc > 2 ? argv[2] : "read";
    setvbuf(stdout, NULL, _IONBF, 0);

    if (strcmp(kind, "handler") == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = own_handler;
        sigaction(SIGSEGV, &sa, NULL);
        kind = "region";
    }

    volatile char *p, *q = NULL;
    int nested_open = 0; /* nested: the access comes while the outer region is open */
    arenashim_arena *arena = NULL;
    if (strcmp(kind, "arena") == 0) {
        if (arenashim_arena_new) {
            arena = arenashim_arena_new();
            p = arenashim_arena_alloc(arena, 64, 0);
        } else {
            p = malloc(64);
        }
        strcpy((char *)p, "hello arena");
        expect_region_object(p);
        if (arenashim_arena_free)
            arenashim_arena_free(arena);
    } else if (strcmp(kind, "large") == 0) {
        region_begin();
        char *big = malloc(6 << 20);
        memset(big, 'L', 6 << 20);
        p = big + (3 << 20) + 123;
        expect_region_object(big);
        region_end();
    } else if (strcmp(kind, "nested") == 0) {
        region_begin();
        char *outer = malloc(32);
        strcpy(outer, "outer");
        region_begin();
        p = malloc(64);
        strcpy((char *)p, "hello inner");
        expect_region_object(p);
        region_end(); /* the inner region ends; the outer one stays open and valid */
        printf("outer still: %s\n", outer);
        nested_open = 1;
    } else {
        region_begin();
        char *before = malloc(100);
        strcpy(before, "before");
        p = malloc(64);
        strcpy((char *)p, "hello region");
        expect_region_object(p);
        char *second = malloc(12000); /* its far end lies two pages beyond p */
        second[9000] = 'S';
        q = second + 9000;
        region_end();
    }
    printf("region over\n");

    if (strcmp(kind, "thread") == 0) {
        struct access_job job = { access, p };
        pthread_t thread;
        pthread_create(&thread, NULL, access_from_thread, &job);
        pthread_join(thread, NULL);
    } else if (strcmp(access, "read") == 0) {
        char c = p[0];
        printf("read '%c'\n", c);
    } else if (strcmp(access, "write") == 0) {
        p[1] = 'E';
        printf("wrote\n");
        printf("read back '%c'\n", p[1]);
    } else if (strcmp(access, "two") == 0 && q) {
        /* Two dead objects on different pages: with on_dangling=recover, both reported. */
        char c = p[0];
        printf("read '%c'\n", c);
        c = q[0];
        printf("then read '%c'\n", c);
    } else if (strcmp(access, "free") == 0) {
        free((void *)p);
        printf("freed\n");
    } else if (strcmp(access, "realloc") == 0) {
        char *q = realloc((void *)p, 1000);
        printf("realloc gave %s\n", q ? "a pointer" : "NULL");
    }
    if (nested_open)
        region_end();
    printf("done\n");
    return 0;
}
