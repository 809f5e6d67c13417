/*
 * sys.h — arenashim's own system calls, past its own interposers.
 *
 * Layer: preload, lib.  The shim interposes write, read, sigaction and signal for the
 * program (system-call guards, SIGSEGV chaining).  arenashim's own I/O and signal set-up must
 * not run through those: they would check buffers that are never region memory, and
 * sigaction() for SIGSEGV would record instead of install.  These go straight to the kernel
 * (or to glibc's internal sigaction entry).  Being no cancellation points either, they can run
 * under arenashim's locks in a thread that pthread_cancel may unwind at its next one: glibc's
 * open, read and close would act on a pending cancel there, and the lock would never be freed.
 */
#ifndef ARENASHIM_PRELOAD_LIB_SYS_H
#define ARENASHIM_PRELOAD_LIB_SYS_H

#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

static inline int sys_open(const char *path, int flags)
{
    return (int)syscall(SYS_openat, AT_FDCWD, path, flags, 0);
}

static inline int sys_close(int fd)
{
    return (int)syscall(SYS_close, fd);
}

static inline ssize_t sys_write(int fd, const void *buffer, size_t len)
{
    return syscall(SYS_write, fd, buffer, len);
}

static inline ssize_t sys_read(int fd, void *buffer, size_t len)
{
    return syscall(SYS_read, fd, buffer, len);
}

static inline ssize_t sys_pread(int fd, void *buffer, size_t len, off_t offset)
{
    return syscall(SYS_pread64, fd, buffer, len, offset);
}

/* glibc's own entry point, which installs whatever the signal. */
extern int __sigaction(int signal, const struct sigaction *action, struct sigaction *old);

static inline int sys_sigaction(int signal, const struct sigaction *action, struct sigaction *old)
{
    return __sigaction(signal, action, old);
}

#endif
