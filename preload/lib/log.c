/*
 * log.c — the log: one output path for reports, warnings and the summary (see log.h).
 *
 * Layer: preload, lib.  Formatting goes through vsnprintf into a buffer on the stack: no
 * stdio stream, no malloc.
 */
#include "log.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int log_fd = STDERR_FILENO;

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
    write_all(log_fd, text, len);
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
    write_line(log_fd, "arenashim: warning: ", format, args);
    va_end(args);
}

void log_note(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    write_line(log_fd, "arenashim: ", format, args);
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

bool log_open(const char *pattern, char *path, size_t path_len)
{
    path_expand(path, path_len, pattern);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return false;
    if (log_fd != STDERR_FILENO)
        close(log_fd);
    log_fd = fd;
    return true;
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
