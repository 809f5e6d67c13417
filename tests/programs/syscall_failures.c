/*
 * syscall_failures.c — a program whose memory system calls start failing halfway through.
 *
 *     syscall_failures MODE CALLS [FIRST]
 *
 * Calls work() CALLS times (each builds a list of 40 objects of 16 bytes to 24 KiB, sums it
 * and frees it).  After a third of the calls (after FIRST calls, when given: 0 is before the
 * first region, when arenashim has made almost none of its metadata) it installs a seccomp filter that makes system
 * calls fail with ENOMEM from then on, as a kernel out of memory or mappings would:
 *
 *     mremap   mremap only
 *     memory   mremap, mprotect and madvise (mmap still works: the heap may grow)
 *     metadata mprotect to read-write of a length that is not a multiple of 2 MiB: what
 *              arenashim commits of its own metadata (1 MiB steps) fails, while chunks (2 MiB,
 *              the default chunk_size) are still had
 *
 * It knows nothing of arenashim: mark work, and whatever arenashim can no longer do (move
 * pages, revoke a region, make a chunk accessible, start a thread) must leave the program
 * running to the end with the output of its plain run.  Prints "OK MODE SUM".
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define OPAQUE(p) __asm__ volatile("" : : "g"(p) : "memory")

struct node {
    struct node *next;
    unsigned long value;
};

__attribute__((noinline)) unsigned long work(unsigned call)
{
    struct node *head = NULL;
    for (unsigned k = 0; k < 40; k++) {
        size_t size = sizeof(struct node) + 1 + ((call * 131 + k * 977) % 24000);
        struct node *n = malloc(size);
        if (n == NULL) {
            fprintf(stderr, "syscall_failures: malloc(%zu) failed\n", size);
            exit(4);
        }
        memset(n + 1, (int)(call + k), size - sizeof *n);
        n->value = call * 1000 + k + ((unsigned char *)(n + 1))[size - sizeof *n - 1];
        n->next = head;
        head = n;
        OPAQUE(n);
    }
    unsigned long sum = 0;
    while (head != NULL) {
        struct node *next = head->next;
        sum += head->value;
        free(head);
        head = next;
    }
    return sum;
}

static void fail_from_now_on(const char *mode)
{
    int calls[3], count = 0;
    if (strcmp(mode, "mremap") == 0) {
        calls[count++] = SYS_mremap;
    } else if (strcmp(mode, "memory") == 0) {
        calls[count++] = SYS_mremap;
        calls[count++] = SYS_mprotect;
        calls[count++] = SYS_madvise;
    } else if (strcmp(mode, "metadata") != 0) {
        fprintf(stderr, "syscall_failures: unknown mode %s\n", mode);
        exit(2);
    }
    struct sock_filter filter[16];
    unsigned n = 0;
    filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
    filter[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    if (count == 0) { /* metadata: mprotect(_, len % 2 MiB != 0, PROT_READ | PROT_WRITE) */
        calls[count++] = SYS_mprotect;
        filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mprotect, 1, 0);
        filter[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
        filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2]));
        filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PROT_READ | PROT_WRITE, 1, 0);
        filter[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
        filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1]));
        filter[n++] = (struct sock_filter)BPF_STMT(BPF_ALU | BPF_AND | BPF_K, (2u << 20) - 1);
        filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1);
        filter[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
        filter[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOMEM);
        goto install;
    }
    for (int i = 0; i < count; i++) {
        /* Equal: fall through to the ENOMEM return below it; else skip it. */
        filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)calls[i], 0, 1);
        filter[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOMEM);
    }
    filter[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
install:;
    struct sock_fprog program = { .len = (unsigned short)n, .filter = filter };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &program) != 0) {
        perror("syscall_failures: seccomp");
        exit(3);
    }
    /* The filter holds: the first call it names fails with ENOMEM. */
    errno = 0;
    if (syscall(calls[0], 0, 4096, PROT_READ | PROT_WRITE, 0, 0) != -1 || errno != ENOMEM) {
        fprintf(stderr, "syscall_failures: the filter does not make system call %d fail\n", calls[0]);
        exit(5);
    }
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: syscall_failures mremap|memory|metadata CALLS [FIRST]\n");
        return 2;
    }
    unsigned calls = (unsigned)atoi(argv[2]);
    unsigned first = argc == 4 ? (unsigned)atoi(argv[3]) : calls / 3;
    unsigned long sum = 0;
    for (unsigned call = 0; call < calls; call++) {
        if (call == first)
            fail_from_now_on(argv[1]);
        sum += work(call);
    }
    printf("OK %s %lu\n", argv[1], sum);
    return 0;
}
