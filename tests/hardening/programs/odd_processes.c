/*
 * odd_processes.c — processes and control flow that an allocator preload must survive, each
 * around calls of work() (mark it: ARENASHIM_REGIONS=work).  Knows nothing of arenashim.
 *
 *   odd_processes vfork          work() calls vfork; the child execs /bin/true; the parent
 *                                goes on allocating in work
 *   odd_processes spawn          work() runs /bin/echo through posix_spawn and waits for it
 *   odd_processes clone_fork     a child made by the clone system call itself (a fork without
 *                                pthread_atfork handlers) calls work() 6000 times
 *   odd_processes clone_vm       a raw clone(CLONE_VM | CLONE_VFORK) child on its own stack
 *                                execs /bin/true (what posix_spawn does inside)
 *   odd_processes exec           work() allocates, then execs this program with "after-exec"
 *   odd_processes after-exec     (the exec's target) calls work() 5 times and prints
 *   odd_processes exit           work() allocates, then calls exit(0) with its region open;
 *                                an atexit handler reads the object
 *   odd_processes altstack       a SIGALRM handler on an alternate signal stack calls work()
 *                                while the main flow is inside work() itself
 *   odd_processes segv_longjmp   work() faults on purpose (a wild write); the program's own
 *                                SIGSEGV handler siglongjmps out of work's frame; 20 times
 *
 * Every mode calls work() several times around the odd step, and prints "OK MODE SUM".
 */
#define _GNU_SOURCE
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define OPAQUE(p) __asm__ volatile("" : : "g"(p) : "memory")

static volatile int step;
static char *self_path;
static void *volatile kept;

static void odd_step(void);

/* Allocates a few objects, runs the mode's odd step once (when asked), frees, returns a sum. */
__attribute__((noinline)) unsigned long work(unsigned seed, int odd)
{
    char *objects[6];
    unsigned long sum = 0;
    for (unsigned i = 0; i < 6; i++) {
        objects[i] = malloc(24 + (seed * 7 + i * 13) % 500);
        memset(objects[i], (int)(seed + i), 8);
        OPAQUE(objects[i]);
    }
    kept = objects[0];
    if (odd)
        odd_step();
    for (unsigned i = 0; i < 6; i++) {
        sum += (unsigned char)objects[i][1];
        free(objects[i]);
    }
    return sum;
}

static const char *mode;
static sigjmp_buf escape;
static volatile sig_atomic_t in_handler_calls;
static unsigned long handler_sum;

static void run_true(void)
{
    char *argv[] = { "true", NULL };
    execve("/bin/true", argv, environ);
    _exit(127);
}

static int clone_vm_child(void *arg)
{
    (void)arg;
    run_true();
    return 0;
}

static void odd_step(void)
{
    if (strcmp(mode, "vfork") == 0) {
        pid_t pid = vfork();
        if (pid == 0)
            run_true();
        int status;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            printf("vfork child: status %d\n", status);
    } else if (strcmp(mode, "spawn") == 0) {
        pid_t pid;
        char *argv[] = { "echo", "spawned", NULL };
        if (posix_spawn(&pid, "/bin/echo", NULL, NULL, argv, environ) != 0) {
            printf("posix_spawn failed\n");
            return;
        }
        int status;
        waitpid(pid, &status, 0);
    } else if (strcmp(mode, "exec") == 0) {
        fflush(stdout);
        char *argv[] = { self_path, "after-exec", NULL };
        execve(self_path, argv, environ);
        printf("exec failed\n");
    } else if (strcmp(mode, "exit") == 0) {
        printf("OK exit %d\n", ((volatile char *)kept)[0]);
        exit(0);
    } else if (strcmp(mode, "segv_longjmp") == 0) {
        volatile int *wild = (volatile int *)(uintptr_t)(step + 0x10);
        *wild = 1; /* the program's own bug, caught by its handler */
    }
}

static void read_kept_at_exit(void)
{
    /* The region of the work() call that called exit is still open: its object is alive. */
    printf("atexit reads %d\n", ((volatile char *)kept)[0]);
}

static void on_alarm(int sig)
{
    (void)sig;
    in_handler_calls++;
    handler_sum += work(77, 0);
}

static void on_segv(int sig)
{
    (void)sig;
    siglongjmp(escape, 1);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: odd_processes MODE\n");
        return 2;
    }
    mode = argv[1];
    self_path = argv[0];
    unsigned long sum = 0;
    for (unsigned i = 0; i < 5; i++)
        sum += work(i, 0);

    if (strcmp(mode, "vfork") == 0 || strcmp(mode, "spawn") == 0) {
        for (unsigned i = 0; i < 5; i++)
            sum += work(i, 1);
    } else if (strcmp(mode, "clone_fork") == 0) {
        /* Enough region memory first that the parent has scanned (its collector thread runs)
         * when the child is made: the child has no such thread. */
        for (unsigned i = 0; i < 6000; i++) {
            char *big = malloc(3000);
            memset(big, 1, 3000);
            sum += (work(i, 0) + (unsigned char)big[10]) & 1;
            free(big);
        }
        fflush(stdout);
        /* The system call itself, without CLONE_VM: a copy of the process, like fork, but
         * no pthread_atfork handler runs (glibc's, or arenashim's). */
        pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, 0);
        if (pid == 0) {
            unsigned long child = 0;
            for (unsigned i = 0; i < 6000; i++) {
                char *big = malloc(3000);
                memset(big, 1, 3000);
                child += work(i, 0) + (unsigned char)big[10];
                free(big);
            }
            printf("child %lu\n", child);
            exit(0); /* with the exit handlers: its statistics are written */
        }
        int status;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            printf("clone child: status %d\n", status);
        sum += work(9, 0);
    } else if (strcmp(mode, "clone_vm") == 0) {
        size_t size = 256 << 10;
        char *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        pid_t pid = clone(clone_vm_child, stack + size, CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
        int status;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            printf("clone_vm child: status %d\n", status);
        for (unsigned i = 0; i < 5; i++)
            sum += work(i, 0);
    } else if (strcmp(mode, "exec") == 0) {
        sum += work(1, 1); /* does not return */
    } else if (strcmp(mode, "after-exec") == 0) {
        for (unsigned i = 0; i < 5; i++)
            sum += work(i, 0);
    } else if (strcmp(mode, "exit") == 0) {
        atexit(read_kept_at_exit);
        fflush(stdout);
        sum += work(3, 1); /* exits inside */
    } else if (strcmp(mode, "altstack") == 0) {
        stack_t alt = { .ss_sp = malloc(1 << 16), .ss_size = 1 << 16, .ss_flags = 0 };
        sigaltstack(&alt, NULL);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_alarm;
        sa.sa_flags = SA_ONSTACK;
        sigaction(SIGALRM, &sa, NULL);
        for (unsigned i = 0; i < 20; i++) {
            /* The signal arrives while this thread is inside work(): its handler's work()
             * call nests on the alternate stack. */
            kill(getpid(), SIGALRM);
            sum += work(i, 0);
        }
        sum += handler_sum;
        printf("handler calls %d\n", (int)in_handler_calls);
    } else if (strcmp(mode, "segv_longjmp") == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_segv;
        sa.sa_flags = SA_NODEFER;
        sigaction(SIGSEGV, &sa, NULL);
        unsigned escaped = 0;
        for (unsigned i = 0; i < 20; i++) {
            if (sigsetjmp(escape, 1) == 0)
                sum += work(i, 1);
            else
                escaped++;
            sum += work(i + 100, 0);
        }
        printf("escaped %u\n", escaped);
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    printf("OK %s %lu\n", mode, sum);
    return 0;
}
