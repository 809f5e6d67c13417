/*
 * probe.c — which functions of a library does a command call?  An independent answer for
 * reach.py, which needs to know the functions a workload calls, hooked or not (a refused
 * marker opens no region, so arenashim's own statistics cannot tell).
 *
 * Usage: probe LIBNAME OFFSETS OUT -- CMD [ARG...]
 *   LIBNAME  file name (or prefix up to a '.') of a library CMD loads at start-up
 *   OFFSETS  a file of function offsets in that library, one hex number a line (as nm prints)
 *   OUT      written with the offsets whose function was entered at least once
 *
 * It runs CMD under ptrace: stops at the program's entry point (the library is loaded by
 * then), puts an int3 on the first byte of every listed function, and when one is hit
 * records it, puts the byte back and lets the function run.  CMD's exit status is probe's.
 * Exit status 125 when ptrace or the library cannot be found.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

struct breakpoint {
    uintptr_t offset, address;
    unsigned char original;
    int hit;
};

static int compare(const void *a, const void *b)
{
    uintptr_t x = ((const struct breakpoint *)a)->address, y = ((const struct breakpoint *)b)->address;
    return x < y ? -1 : x > y;
}

static int poke_byte(pid_t pid, uintptr_t address, unsigned char value, unsigned char *old)
{
    errno = 0;
    long word = ptrace(PTRACE_PEEKTEXT, pid, (void *)address, NULL);
    if (errno)
        return -1;
    if (old)
        *old = (unsigned char)(word & 0xff);
    word = (word & ~0xffL) | value;
    return ptrace(PTRACE_POKETEXT, pid, (void *)address, (void *)word) == 0 ? 0 : -1;
}

static uintptr_t auxv_entry(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/auxv", (int)pid);
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    Elf64_auxv_t aux;
    uintptr_t entry = 0;
    while (fread(&aux, sizeof aux, 1, f) == 1)
        if (aux.a_type == AT_ENTRY)
            entry = aux.a_un.a_val;
    fclose(f);
    return entry;
}

static int name_matches(const char *path, const char *name)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t len = strlen(name);
    return strncmp(base, name, len) == 0 && (base[len] == '\0' || base[len] == '.');
}

static uintptr_t library_base(pid_t pid, const char *name)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    uintptr_t base = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long start, end, offset;
        char perms[8], file[512] = "";
        if (sscanf(line, "%lx-%lx %7s %lx %*s %*s %511s", &start, &end, perms, &offset, file) < 4)
            continue;
        if (offset == 0 && file[0] && name_matches(file, name)) {
            base = start;
            break;
        }
    }
    fclose(f);
    return base;
}

int main(int argc, char **argv)
{
    if (argc < 6 || strcmp(argv[4], "--") != 0) {
        fprintf(stderr, "usage: probe LIBNAME OFFSETS OUT -- CMD [ARG...]\n");
        return 125;
    }
    FILE *list = fopen(argv[2], "r");
    if (!list) {
        perror(argv[2]);
        return 125;
    }
    size_t count = 0, capacity = 4096;
    struct breakpoint *bps = calloc(capacity, sizeof *bps);
    unsigned long value;
    while (fscanf(list, "%lx", &value) == 1) {
        if (count == capacity) {
            capacity *= 2;
            bps = realloc(bps, capacity * sizeof *bps);
        }
        memset(&bps[count], 0, sizeof bps[count]);
        bps[count++].offset = value;
    }
    fclose(list);

    pid_t child = fork();
    if (child == 0) {
        if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0)
            _exit(125);
        execvp(argv[5], argv + 5);
        _exit(127);
    }
    int status;
    if (waitpid(child, &status, 0) != child || !WIFSTOPPED(status)) {
        fprintf(stderr, "probe: the command did not stop at exec (ptrace not permitted?)\n");
        return 125;
    }
    ptrace(PTRACE_SETOPTIONS, child, NULL, (void *)(long)PTRACE_O_EXITKILL);
    uintptr_t entry = auxv_entry(child);
    unsigned char entry_byte;
    if (entry == 0 || poke_byte(child, entry, 0xcc, &entry_byte) != 0) {
        fprintf(stderr, "probe: cannot break at the entry point\n");
        kill(child, SIGKILL);
        return 125;
    }
    ptrace(PTRACE_CONT, child, NULL, NULL);
    for (;;) {
        if (waitpid(child, &status, 0) != child || !WIFSTOPPED(status)) {
            fprintf(stderr, "probe: the command ended before its entry point\n");
            return 125;
        }
        struct user_regs_struct regs;
        ptrace(PTRACE_GETREGS, child, NULL, &regs);
        if (WSTOPSIG(status) == SIGTRAP && regs.rip == entry + 1) {
            poke_byte(child, entry, entry_byte, NULL);
            regs.rip = entry;
            ptrace(PTRACE_SETREGS, child, NULL, &regs);
            break;
        }
        ptrace(PTRACE_CONT, child, NULL, (void *)(long)WSTOPSIG(status));
    }
    uintptr_t base = library_base(child, argv[1]);
    if (base == 0) {
        fprintf(stderr, "probe: %s is not loaded at the entry point\n", argv[1]);
        kill(child, SIGKILL);
        return 125;
    }
    for (size_t i = 0; i < count; i++)
        bps[i].address = base + bps[i].offset;
    qsort(bps, count, sizeof *bps, compare);
    /* Aliases share an address: one breakpoint serves them all. */
    for (size_t i = 0; i < count; i++) {
        if (i > 0 && bps[i].address == bps[i - 1].address) {
            bps[i].original = bps[i - 1].original;
            continue;
        }
        if (poke_byte(child, bps[i].address, 0xcc, &bps[i].original) != 0)
            fprintf(stderr, "probe: cannot break at %#lx\n", (unsigned long)bps[i].offset);
    }
    int exit_code = 0;
    ptrace(PTRACE_CONT, child, NULL, NULL);
    for (;;) {
        if (waitpid(child, &status, 0) != child)
            break;
        if (WIFEXITED(status)) {
            exit_code = WEXITSTATUS(status);
            break;
        }
        if (WIFSIGNALED(status)) {
            exit_code = 128 + WTERMSIG(status);
            break;
        }
        int sig = WSTOPSIG(status);
        if (sig == SIGTRAP) {
            struct user_regs_struct regs;
            ptrace(PTRACE_GETREGS, child, NULL, &regs);
            struct breakpoint key = { .address = regs.rip - 1 };
            struct breakpoint *bp = bsearch(&key, bps, count, sizeof *bps, compare);
            if (bp) {
                while (bp > bps && bp[-1].address == bp->address)
                    bp--;
                for (struct breakpoint *b = bp; b < bps + count && b->address == key.address; b++)
                    b->hit = 1;
                poke_byte(child, bp->address, bp->original, NULL);
                regs.rip = bp->address;
                ptrace(PTRACE_SETREGS, child, NULL, &regs);
                sig = 0;
            }
        }
        ptrace(PTRACE_CONT, child, NULL, (void *)(long)sig);
    }
    FILE *out = fopen(argv[3], "w");
    if (!out) {
        perror(argv[3]);
        return 125;
    }
    for (size_t i = 0; i < count; i++)
        if (bps[i].hit)
            fprintf(out, "%lx\n", (unsigned long)bps[i].offset);
    fclose(out);
    return exit_code;
}
