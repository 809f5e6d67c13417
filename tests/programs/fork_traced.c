/*
 * fork_traced.c — fork while another thread runs regions, then regions and dangling reads in
 * the child.
 *
 *   fork_traced CHILDREN
 *
 * An ordinary program: it knows nothing of arenashim.  request() (the marker:
 * ARENASHIM_REGIONS=request) allocates a few objects, frees all but one, and hands that one
 * back: it escapes the region.  A helper thread calls request() in a loop the whole time, so
 * forks happen while another thread allocates, traces and ends regions.  main keeps one
 * escaped object, then forks CHILDREN children one after the other; each child calls request()
 * three times, reads the parent's escaped object and its own (two dangling reads), prints what
 * it read and exits with exit(0).  After the last child the parent reads its escaped object too.
 *
 * stdout is the same with or without arenashim (with on_dangling=recover the dangling reads
 * see the objects' contents); each process's pid goes to stderr:
 *   fork_traced: parent pid P
 *   fork_traced: child K pid C
 * A child that did not exit 0 makes the parent print "child K: status S" and exit 1.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline)) long request(int id, char **escaped)
{
    char *objects[8];
    long sum = 0;
    for (int i = 0; i < 8; i++) {
        objects[i] = malloc(24 + (size_t)i * 16);
        if (objects[i] == NULL)
            exit(3);
        snprintf(objects[i], 24, "request %d object %d", id, i);
        sum += (long)strlen(objects[i]);
    }
    for (int i = 0; i < 8; i++)
        if (i != 5)
            free(objects[i]);
    *escaped = objects[5];
    return sum;
}

static volatile int stop;

static void *helper(void *arg)
{
    (void)arg;
    for (int i = 0; !stop; i++) {
        char *escaped;
        request(100000 + i, &escaped);
        free(escaped); /* a free after its region ended: counted, harmless */
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int children = argc > 1 ? atoi(argv[1]) : 8;
    setvbuf(stdout, NULL, _IOLBF, 0);
    fprintf(stderr, "fork_traced: parent pid %d\n", (int)getpid());
    pthread_t thread;
    if (pthread_create(&thread, NULL, helper, NULL) != 0)
        return 1;
    char *parent_kept;
    long parent_sum = request(1, &parent_kept);
    int failed = 0;
    for (int k = 0; k < children; k++) {
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0)
            return 1;
        if (pid == 0) {
            fprintf(stderr, "fork_traced: child %d pid %d\n", k, (int)getpid());
            char *own_kept = NULL;
            long sum = 0;
            for (int j = 0; j < 3; j++)
                sum += request(1000 * (k + 2) + j, &own_kept);
            printf("child %d: parent's object '%s', own object '%s', sum %ld\n", k, parent_kept, own_kept, sum);
            exit(0);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid)
            return 1;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            printf("child %d: status %d\n", k, status);
            failed = 1;
        }
    }
    stop = 1;
    pthread_join(thread, NULL);
    printf("parent: own object '%s', sum %ld\n", parent_kept, parent_sum);
    return failed;
}
