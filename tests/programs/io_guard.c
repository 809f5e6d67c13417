/*
 * io_guard.c — a dangling buffer handed to each I/O call that arenashim guards
 * (preload/shim/syscall_guard.c): read, write, pread, pwrite, readv, writev, send, recv,
 * sendto, recvfrom, fread, fwrite (and fread_unlocked, fwrite_unlocked).
 *
 *   io_guard CALL       CALL is one of the names above, or "none" (no I/O on the buffer)
 *
 * An ordinary program: it knows nothing of arenashim.  make_buffer() allocates a buffer,
 * fills it with a pattern and returns it; run with ARENASHIM_REGIONS=make_buffer its call is a
 * region, so the pointer it returns dangles.  Then use_CALL() hands that buffer to CALL:
 *
 *   - calls that send the buffer (write, pwrite, writev, send, sendto, fwrite): the bytes
 *     must arrive intact at the other end (a pipe, a file, a socket pair), read back here;
 *   - calls that fill the buffer (read, pread, readv, recv, recvfrom, fread): the buffer must
 *     then hold what was sent.
 *
 * Each prints "CALL: returned N, data ok" (or what went wrong, with errno).  Without
 * arenashim, or with on_dangling=recover, every call works (the buffer's contents are kept);
 * with on_dangling=abort the process dies by SIGSEGV after the report, before the call
 * prints anything.  Each use_CALL is its own function so that the report's access backtrace
 * names it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define LEN 100

static char tmp_path[] = "/tmp/io_guard.XXXXXX";

static void pattern(char *b, unsigned seed)
{
    for (int i = 0; i < LEN; i++)
        b[i] = (char)('A' + (seed + i * 7) % 26);
}

static int pattern_ok(const char *b, unsigned seed)
{
    char want[LEN];
    pattern(want, seed);
    return memcmp(b, want, LEN) == 0;
}

/* The region: what it returns outlives it. */
__attribute__((noinline)) char *make_buffer(unsigned seed)
{
    char *b = malloc(LEN);
    if (b == NULL)
        exit(3);
    pattern(b, seed);
    return b;
}

static void verdict(const char *call, ssize_t n, int ok)
{
    if (n < 0)
        printf("%s: returned %zd (%s)\n", call, n, strerror(errno));
    else
        printf("%s: returned %zd, data %s\n", call, n, ok ? "ok" : "WRONG");
    fflush(stdout);
}

static void make_pipe(int fds[2])
{
    if (pipe(fds) != 0)
        exit(4);
}

static void make_socketpair(int type, int fds[2])
{
    if (socketpair(AF_UNIX, type, 0, fds) != 0)
        exit(4);
}

/* A temporary file: empty, or holding the pattern of seed 9. */
static int temp_file(int with_pattern)
{
    int fd = mkstemp(tmp_path);
    if (fd < 0)
        exit(4);
    unlink(tmp_path);
    if (with_pattern) {
        char b[LEN];
        pattern(b, 9);
        if (pwrite(fd, b, LEN, 0) != LEN)
            exit(4);
    }
    return fd;
}

/* --- calls that read the dangling buffer -------------------------------------------------- */

__attribute__((noinline)) static void use_write(char *dangling)
{
    int fds[2];
    char back[LEN];
    make_pipe(fds);
    ssize_t n = write(fds[1], dangling, LEN);
    verdict("write", n, n == LEN && read(fds[0], back, LEN) == LEN && pattern_ok(back, 1));
}

__attribute__((noinline)) static void use_pwrite(char *dangling)
{
    int fd = temp_file(0);
    char back[LEN];
    ssize_t n = pwrite(fd, dangling, LEN, 0);
    verdict("pwrite", n, n == LEN && pread(fd, back, LEN, 0) == LEN && pattern_ok(back, 1));
}

__attribute__((noinline)) static void use_writev(char *dangling)
{
    int fds[2];
    char head[4] = "hdr:", back[4 + LEN];
    make_pipe(fds);
    struct iovec iov[2] = { { head, 4 }, { dangling, LEN } };
    ssize_t n = writev(fds[1], iov, 2);
    verdict("writev", n, n == 4 + LEN && read(fds[0], back, sizeof back) == 4 + LEN &&
                             memcmp(back, "hdr:", 4) == 0 && pattern_ok(back + 4, 1));
}

__attribute__((noinline)) static void use_send(char *dangling)
{
    int fds[2];
    char back[LEN];
    make_socketpair(SOCK_STREAM, fds);
    ssize_t n = send(fds[0], dangling, LEN, 0);
    verdict("send", n, n == LEN && recv(fds[1], back, LEN, MSG_WAITALL) == LEN && pattern_ok(back, 1));
}

__attribute__((noinline)) static void use_sendto(char *dangling)
{
    int fds[2];
    char back[LEN];
    make_socketpair(SOCK_DGRAM, fds);
    ssize_t n = sendto(fds[0], dangling, LEN, 0, NULL, 0);
    verdict("sendto", n, n == LEN && recvfrom(fds[1], back, LEN, 0, NULL, NULL) == LEN && pattern_ok(back, 1));
}

__attribute__((noinline)) static void use_fwrite(char *dangling, int unlocked)
{
    int fd = temp_file(0);
    FILE *f = fdopen(fd, "w+");
    char back[LEN];
    if (f == NULL)
        exit(4);
    size_t n = unlocked ? fwrite_unlocked(dangling, 1, LEN, f) : fwrite(dangling, 1, LEN, f);
    int ok = n == LEN && fflush(f) == 0 && pread(fd, back, LEN, 0) == LEN && pattern_ok(back, 1);
    verdict(unlocked ? "fwrite_unlocked" : "fwrite", (ssize_t)n, ok);
    fclose(f);
}

/* --- calls that fill the dangling buffer ---------------------------------------------------- */

__attribute__((noinline)) static void use_read(char *dangling)
{
    int fds[2];
    char b[LEN];
    make_pipe(fds);
    pattern(b, 9);
    if (write(fds[1], b, LEN) != LEN)
        exit(4);
    ssize_t n = read(fds[0], dangling, LEN);
    verdict("read", n, n == LEN && pattern_ok(dangling, 9));
}

__attribute__((noinline)) static void use_pread(char *dangling)
{
    int fd = temp_file(1);
    ssize_t n = pread(fd, dangling, LEN, 0);
    verdict("pread", n, n == LEN && pattern_ok(dangling, 9));
}

__attribute__((noinline)) static void use_readv(char *dangling)
{
    int fds[2];
    char b[4 + LEN], head[4];
    make_pipe(fds);
    memcpy(b, "hdr:", 4);
    pattern(b + 4, 9);
    if (write(fds[1], b, sizeof b) != (ssize_t)sizeof b)
        exit(4);
    struct iovec iov[2] = { { head, 4 }, { dangling, LEN } };
    ssize_t n = readv(fds[0], iov, 2);
    verdict("readv", n, n == 4 + LEN && memcmp(head, "hdr:", 4) == 0 && pattern_ok(dangling, 9));
}

__attribute__((noinline)) static void use_recv(char *dangling)
{
    int fds[2];
    char b[LEN];
    make_socketpair(SOCK_STREAM, fds);
    pattern(b, 9);
    if (send(fds[1], b, LEN, 0) != LEN)
        exit(4);
    ssize_t n = recv(fds[0], dangling, LEN, MSG_WAITALL);
    verdict("recv", n, n == LEN && pattern_ok(dangling, 9));
}

__attribute__((noinline)) static void use_recvfrom(char *dangling)
{
    int fds[2];
    char b[LEN];
    make_socketpair(SOCK_DGRAM, fds);
    pattern(b, 9);
    if (sendto(fds[1], b, LEN, 0, NULL, 0) != LEN)
        exit(4);
    ssize_t n = recvfrom(fds[0], dangling, LEN, 0, NULL, NULL);
    verdict("recvfrom", n, n == LEN && pattern_ok(dangling, 9));
}

__attribute__((noinline)) static void use_fread(char *dangling, int unlocked)
{
    int fd = temp_file(1);
    FILE *f = fdopen(fd, "r");
    if (f == NULL)
        exit(4);
    size_t n = unlocked ? fread_unlocked(dangling, 1, LEN, f) : fread(dangling, 1, LEN, f);
    verdict(unlocked ? "fread_unlocked" : "fread", (ssize_t)n, n == LEN && pattern_ok(dangling, 9));
    fclose(f);
}

int main(int argc, char **argv)
{
    const char *call = argc > 1 ? argv[1] : "none";
    char *dangling = make_buffer(1); /* its region has ended: the buffer is dead */
    if (strcmp(call, "write") == 0) use_write(dangling);
    else if (strcmp(call, "pwrite") == 0) use_pwrite(dangling);
    else if (strcmp(call, "writev") == 0) use_writev(dangling);
    else if (strcmp(call, "send") == 0) use_send(dangling);
    else if (strcmp(call, "sendto") == 0) use_sendto(dangling);
    else if (strcmp(call, "fwrite") == 0) use_fwrite(dangling, 0);
    else if (strcmp(call, "fwrite_unlocked") == 0) use_fwrite(dangling, 1);
    else if (strcmp(call, "read") == 0) use_read(dangling);
    else if (strcmp(call, "pread") == 0) use_pread(dangling);
    else if (strcmp(call, "readv") == 0) use_readv(dangling);
    else if (strcmp(call, "recv") == 0) use_recv(dangling);
    else if (strcmp(call, "recvfrom") == 0) use_recvfrom(dangling);
    else if (strcmp(call, "fread") == 0) use_fread(dangling, 0);
    else if (strcmp(call, "fread_unlocked") == 0) use_fread(dangling, 1);
    else if (strcmp(call, "none") != 0) {
        fprintf(stderr, "io_guard: unknown call '%s'\n", call);
        return 2;
    }
    printf("done\n");
    return 0;
}
