/*
 * log.c — the log: one output path for reports, warnings and the summary (see log.h).
 *
 * Layer: preload, lib.  Formatting goes through vsnprintf into a buffer on the stack: no
 * stdio stream, no malloc.  A log file is opened by the first message (log_open_later), so
 * the descriptor exists only in processes that write to it.
 */
#include "log.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The log's descriptor: stderr, a file, or LOG_DEFERRED until the first message opens
 * deferred_path (log_open_later).  Written once by whichever message comes first (a
 * compare-and-swap: reports come from signal handlers on any thread, on stacks too small for
 * a path, so the path is expanded beforehand). */
#define LOG_DEFERRED (-2)
static int log_fd = STDERR_FILENO;
static char deferred_pattern[PATH_MAX + 1024 + 2]; /* absolute, with "%p" */
static char deferred_path[sizeof deferred_pattern + 64]; /* expanded for this process */

static int open_for_appending(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);
}

static int log_descriptor(void)
{
    int fd = __atomic_load_n(&log_fd, __ATOMIC_ACQUIRE);
    if (fd != LOG_DEFERRED)
        return fd;
    int opened = open_for_appending(deferred_path);
    if (opened < 0)
        opened = STDERR_FILENO;
    if (__atomic_compare_exchange_n(&log_fd, &fd, opened, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return opened;
    if (opened != STDERR_FILENO)
        sys_close(opened); /* another thread's message opened it first */
    return fd;
}

bool write_all(int fd, const char *text, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = sys_write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        done += (size_t)n;
    }
    return true;
}

void log_write(const char *text, size_t len)
{
    write_all(log_descriptor(), text, len);
}

/* "PREFIX" + the formatted message + "\n", cut to the buffer, written to fd in one go. */
static void write_line(int fd, const char *prefix, const char *format, va_list args)
{
    char line[2048];
    int n = snprintf(line, sizeof line, "%s", prefix);
    if (n < 0)
        return;
    int m = vsnprintf(line + n, sizeof line - (size_t)n, format, args);
    size_t used = (size_t)n + (m > 0 ? (size_t)m : 0);
    if (used > sizeof line - 2)
        used = sizeof line - 2;
    line[used++] = '\n';
    write_all(fd, line, used);
}

void log_warn(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    write_line(log_descriptor(), "arenashim: warning: ", format, args);
    va_end(args);
}

void log_note(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    write_line(log_descriptor(), "arenashim: ", format, args);
    va_end(args);
}

void log_fatal_startup(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    write_line(STDERR_FILENO, "arenashim: error: ", format, args);
    va_end(args);
    _exit(EXIT_STARTUP_ERROR);
}

void log_internal_error(const char *message)
{
    static const char prefix[] = "arenashim: internal error: ";
    write_all(STDERR_FILENO, prefix, sizeof prefix - 1);
    size_t len = 0;
    while (message[len])
        len++;
    write_all(STDERR_FILENO, message, len);
    write_all(STDERR_FILENO, "\n", 1);
    _exit(EXIT_INTERNAL_ERROR);
}

void path_expand(char *out, size_t len, const char *pattern)
{
    size_t used = 0;
    for (const char *p = pattern; *p && used + 1 < len; p++) {
        if (p[0] == '%' && p[1] == 'p') {
            int n = snprintf(out + used, len - used, "%d", (int)getpid());
            used += n > 0 ? (size_t)n : 0;
            p++;
        } else {
            out[used++] = *p;
        }
    }
    out[used < len ? used : len - 1] = '\0';
}

bool log_check(const char *pattern, char *path, size_t path_len)
{
    path_expand(path, path_len, pattern);
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
        close(fd);
        return true;
    }
    if (errno != ENOENT)
        return false;
    char directory[PATH_MAX];
    snprintf(directory, sizeof directory, "%s", path);
    char *slash = strrchr(directory, '/');
    if (slash == NULL)
        strcpy(directory, ".");
    else if (slash == directory)
        directory[1] = '\0';
    else
        *slash = '\0';
    /* Missing: a file can be made there when the directory can be written (ENOENT when the
     * directory itself is missing). */
    return faccessat(AT_FDCWD, directory, W_OK | X_OK, AT_EACCESS) == 0;
}

void file_write_atomically(const char *path, const char *text, size_t len)
{
    char temporary[4096 + 64];
    snprintf(temporary, sizeof temporary, "%s.XXXXXX", path);
    int fd = mkostemp(temporary, O_CLOEXEC);
    if (fd < 0)
        return;
    bool written = write_all(fd, text, len);
    close(fd);
    if (written)
        rename(temporary, path);
    else
        unlink(temporary);
}

void log_open_later(const char *pattern)
{
    size_t used = 0;
    if (pattern[0] != '/' && getcwd(deferred_pattern, PATH_MAX) != NULL) {
        used = strlen(deferred_pattern);
        deferred_pattern[used++] = '/';
    }
    snprintf(deferred_pattern + used, sizeof deferred_pattern - used, "%s", pattern);
    path_expand(deferred_path, sizeof deferred_path, deferred_pattern);
    int previous = __atomic_exchange_n(&log_fd, LOG_DEFERRED, __ATOMIC_ACQ_REL);
    if (previous >= 0 && previous != STDERR_FILENO)
        close(previous);
}

void log_fork_child(void)
{
    if (strstr(deferred_pattern, "%p") == NULL)
        return;
    path_expand(deferred_path, sizeof deferred_path, deferred_pattern);
    int fd = __atomic_exchange_n(&log_fd, LOG_DEFERRED, __ATOMIC_ACQ_REL);
    if (fd >= 0 && fd != STDERR_FILENO)
        sys_close(fd);
}
