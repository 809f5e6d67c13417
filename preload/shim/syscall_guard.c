/*
 * syscall_guard.c — dangling buffers handed to system calls.
 *
 * Layer: preload, shim.  A system call that reads or writes faulted region memory does not fault:
 * the kernel returns EFAULT, and the program sees a failed write() where it would have
 * crashed in its own code.  The calls that move data between user buffers and descriptors
 * are interposed — and stdio's fwrite/fread, which hand large buffers to the kernel without
 * touching them, through internal calls no interposition reaches — one range check against the chunk reservation (two compares when the
 * buffer is not region memory), and only for region memory a look at the pages, so a dangling
 * buffer is reported and handled like any dangling access before the call.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "shim.h"

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_read)(int, void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, int64_t);
static ssize_t (*real_pread)(int, void *, size_t, int64_t);
static ssize_t (*real_send)(int, const void *, size_t, int);
static ssize_t (*real_recv)(int, void *, size_t, int);
static ssize_t (*real_sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
static ssize_t (*real_recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_readv)(int, const struct iovec *, int);
static size_t (*real_fwrite)(const void *, size_t, size_t, FILE *);
static size_t (*real_fwrite_unlocked)(const void *, size_t, size_t, FILE *);
static size_t (*real_fread)(void *, size_t, size_t, FILE *);
static size_t (*real_fread_unlocked)(void *, size_t, size_t, FILE *);

void syscall_guard_init(void)
{
    real_write = dlsym(RTLD_NEXT, "write");
    real_read = dlsym(RTLD_NEXT, "read");
    real_pwrite = dlsym(RTLD_NEXT, "pwrite64");
    real_pread = dlsym(RTLD_NEXT, "pread64");
    real_send = dlsym(RTLD_NEXT, "send");
    real_recv = dlsym(RTLD_NEXT, "recv");
    real_sendto = dlsym(RTLD_NEXT, "sendto");
    real_recvfrom = dlsym(RTLD_NEXT, "recvfrom");
    real_writev = dlsym(RTLD_NEXT, "writev");
    real_readv = dlsym(RTLD_NEXT, "readv");
    real_fwrite = dlsym(RTLD_NEXT, "fwrite");
    real_fwrite_unlocked = dlsym(RTLD_NEXT, "fwrite_unlocked");
    real_fread = dlsym(RTLD_NEXT, "fread");
    real_fread_unlocked = dlsym(RTLD_NEXT, "fread_unlocked");
}

/* Region memory lies in one range: buffers elsewhere pass with two compares.  Before
 * start-up has found the real functions, the raw system calls serve. */
static inline void check(const void *buffer, size_t len, bool write)
{
    /* Only the address matters here (read() buffers hold nothing yet): compare integers. */
    uintptr_t first = (uintptr_t)buffer, last = first + (len ? len - 1 : 0);
    if (unlikely(first - core_config.base < core_config.size || last - core_config.base < core_config.size))
        dangling_buffer_check(first, len, write);
}

static size_t total_bytes(size_t size, size_t count)
{
    size_t bytes;
    return __builtin_mul_overflow(size, count, &bytes) ? SIZE_MAX : bytes;
}

static void check_vector(const struct iovec *vector, int count, bool write)
{
    for (int i = 0; i < count; i++)
        check(vector[i].iov_base, vector[i].iov_len, write);
}


EXPORTED ssize_t write(int fd, const void *buffer, size_t len)
{
    check(buffer, len, false);
    return real_write ? real_write(fd, buffer, len) : syscall(SYS_write, fd, buffer, len);
}

EXPORTED ssize_t read(int fd, void *buffer, size_t len)
{
    check(buffer, len, true);
    return real_read ? real_read(fd, buffer, len) : syscall(SYS_read, fd, buffer, len);
}

/* On x86-64 off_t is 64 bits either way: pwrite and pwrite64 are one function under two
 * names.  The names are given explicitly, since with _FILE_OFFSET_BITS=64 the C library's
 * headers turn "pwrite" into "pwrite64". */
EXPORTED ssize_t guard_pwrite(int fd, const void *buffer, size_t len, int64_t offset) __asm__("pwrite64");
EXPORTED ssize_t guard_pwrite(int fd, const void *buffer, size_t len, int64_t offset)
{
    check(buffer, len, false);
    return real_pwrite ? real_pwrite(fd, buffer, len, offset) : syscall(SYS_pwrite64, fd, buffer, len, offset);
}

EXPORTED ssize_t guard_pread(int fd, void *buffer, size_t len, int64_t offset) __asm__("pread64");
EXPORTED ssize_t guard_pread(int fd, void *buffer, size_t len, int64_t offset)
{
    check(buffer, len, true);
    return real_pread ? real_pread(fd, buffer, len, offset) : syscall(SYS_pread64, fd, buffer, len, offset);
}

EXPORTED ssize_t guard_pwrite_alias(int fd, const void *buffer, size_t len, int64_t offset)
    __asm__("pwrite") __attribute__((alias("pwrite64")));
EXPORTED ssize_t guard_pread_alias(int fd, void *buffer, size_t len, int64_t offset)
    __asm__("pread") __attribute__((alias("pread64")));

EXPORTED ssize_t send(int fd, const void *buffer, size_t len, int flags)
{
    check(buffer, len, false);
    return real_send ? real_send(fd, buffer, len, flags)
                     : syscall(SYS_sendto, fd, buffer, len, flags, NULL, 0);
}

EXPORTED ssize_t recv(int fd, void *buffer, size_t len, int flags)
{
    check(buffer, len, true);
    return real_recv ? real_recv(fd, buffer, len, flags)
                     : syscall(SYS_recvfrom, fd, buffer, len, flags, NULL, NULL);
}

EXPORTED ssize_t sendto(int fd, const void *buffer, size_t len, int flags,
                           const struct sockaddr *address, socklen_t address_len)
{
    check(buffer, len, false);
    return real_sendto ? real_sendto(fd, buffer, len, flags, address, address_len)
                       : syscall(SYS_sendto, fd, buffer, len, flags, address, address_len);
}

EXPORTED ssize_t recvfrom(int fd, void *buffer, size_t len, int flags, struct sockaddr *address,
                             socklen_t *address_len)
{
    check(buffer, len, true);
    return real_recvfrom ? real_recvfrom(fd, buffer, len, flags, address, address_len)
                         : syscall(SYS_recvfrom, fd, buffer, len, flags, address, address_len);
}

EXPORTED size_t fwrite(const void *buffer, size_t size, size_t count, FILE *stream)
{
    check(buffer, total_bytes(size, count), false);
    if (real_fwrite == NULL) /* called before start-up (another library's constructor) */
        *(void **)&real_fwrite = dlsym(RTLD_NEXT, "fwrite");
    return real_fwrite(buffer, size, count, stream);
}

EXPORTED size_t (fwrite_unlocked)(const void *buffer, size_t size, size_t count, FILE *stream)
{
    check(buffer, total_bytes(size, count), false);
    if (real_fwrite_unlocked == NULL) /* called before start-up (another library's constructor) */
        *(void **)&real_fwrite_unlocked = dlsym(RTLD_NEXT, "fwrite_unlocked");
    return real_fwrite_unlocked(buffer, size, count, stream);
}

EXPORTED size_t fread(void *buffer, size_t size, size_t count, FILE *stream)
{
    check(buffer, total_bytes(size, count), true);
    if (real_fread == NULL) /* called before start-up (another library's constructor) */
        *(void **)&real_fread = dlsym(RTLD_NEXT, "fread");
    return real_fread(buffer, size, count, stream);
}

EXPORTED size_t (fread_unlocked)(void *buffer, size_t size, size_t count, FILE *stream)
{
    check(buffer, total_bytes(size, count), true);
    if (real_fread_unlocked == NULL) /* called before start-up (another library's constructor) */
        *(void **)&real_fread_unlocked = dlsym(RTLD_NEXT, "fread_unlocked");
    return real_fread_unlocked(buffer, size, count, stream);
}

EXPORTED ssize_t writev(int fd, const struct iovec *vector, int count)
{
    check_vector(vector, count, false);
    return real_writev ? real_writev(fd, vector, count) : syscall(SYS_writev, fd, vector, count);
}

EXPORTED ssize_t readv(int fd, const struct iovec *vector, int count)
{
    check_vector(vector, count, true);
    return real_readv ? real_readv(fd, vector, count) : syscall(SYS_readv, fd, vector, count);
}
