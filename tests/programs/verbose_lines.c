/*
 * verbose_lines.c — one run that gives every line README's verbose option promises a reason
 * to appear.
 *
 *   verbose_lines            (ARENASHIM_REGIONS=keep_in_bss,keep_in_heap,make_text,
 *                             ARENASHIM_OPTIONS=chunk_size=64K,on_dangling=recover,verbose=N)
 *
 * Built with include/arenashim.h, whose functions are weak: without the preload they are NULL
 * and the program runs the same.  In order:
 *   1. keep_in_bss() and keep_in_heap() (markers) each allocate a 100 KiB object, larger than
 *      a chunk, and keep a pointer to it: in .bss, and in a heap object allocated outside any
 *      region.  Their regions end; their chunks are dead but still pointed to.
 *   2. make_text() (a marker) returns a string allocated in its region; main reads it after
 *      the region ended (a dangling read, reported, recovered) and then frees it (a free after
 *      region end).
 *   3. arenashim_region_end() with no region open.
 *   4. arenashim_collect(): a scan, which keeps both chunks of step 1 (verbose=1 names who
 *      points into each: ".data/.bss of verbose_lines", "anonymous mapping (jemalloc heap
 *      object)").
 *   5. fork and exec /bin/true: a child process that inherits ARENASHIM_REGIONS and lacks
 *      every marker (ignored there; verbose=1 says so).
 * Prints "text: made in region 7" and "done".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arenashim.h"

#define BIG (100 << 10)

static char *volatile kept_in_bss;
static char *volatile *kept_in_heap;

__attribute__((noinline)) void keep_in_bss(void)
{
    char *p = malloc(BIG);
    if (p == NULL)
        exit(3);
    memset(p, 'b', BIG);
    kept_in_bss = p;
}

__attribute__((noinline)) void keep_in_heap(void)
{
    char *p = malloc(BIG);
    if (p == NULL)
        exit(3);
    memset(p, 'h', BIG);
    *kept_in_heap = p;
}

__attribute__((noinline)) char *make_text(int n)
{
    char *text = malloc(64);
    if (text == NULL)
        exit(3);
    snprintf(text, 64, "made in region %d", n);
    return text;
}

int main(void)
{
    kept_in_heap = malloc(sizeof *kept_in_heap); /* outside any region: a jemalloc object */
    if (kept_in_heap == NULL)
        return 3;
    keep_in_bss();
    keep_in_heap();

    char *text = make_text(7);
    printf("text: %s\n", text); /* a dangling read */
    free(text);                 /* a free after its region ended */

    if (arenashim_region_end)
        arenashim_region_end(); /* no region is open */
    if (arenashim_collect)
        arenashim_collect();

    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/true", "true", (char *)NULL);
        _exit(127);
    }
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        printf("the child failed\n");
        return 1;
    }
    printf("done\n");
    return 0;
}
