/*
 * log.h — where arenashim's words go: one output path, named exit codes.
 *
 * Layer: preload, lib.  Reports, warnings, the exit summary and notes all go to the log: the
 * file of log_path, or stderr.  Each message is written with as few write() calls as its
 * size allows (reports: one, under the report lock), never through stdio, so nothing here
 * allocates and a message written from a signal handler is whole.  Start-up errors always go
 * to stderr (the log may be what failed) and end the process with EXIT_STARTUP_ERROR.
 */
#ifndef ARENASHIM_PRELOAD_LIB_LOG_H
#define ARENASHIM_PRELOAD_LIB_LOG_H

#include <stdbool.h>
#include <stddef.h>

/* Exit statuses arenashim itself ends a process with. */
enum arenashim_exit_status {
    EXIT_STARTUP_ERROR = 2,  /* bad option or marker: the line on stderr says which, and how to fix it */
    EXIT_INTERNAL_ERROR = 70, /* an invariant of arenashim's own broke (EX_SOFTWARE) */
    EXIT_DANGLING = 139,     /* a dangling access whose SIGSEGV could not be delivered (128 + 11) */
};

/* Writes all of text to the log, retrying short writes; errors are dropped (there is no one
 * left to tell). */
void log_write(const char *text, size_t len);
/* "arenashim: warning: MESSAGE\n" to the log. */
__attribute__((format(printf, 1, 2))) void log_warn(const char *format, ...);
/* "arenashim: MESSAGE\n" to the log (verbose notes, exit lines). */
__attribute__((format(printf, 1, 2))) void log_note(const char *format, ...);
/* "arenashim: error: MESSAGE\n" on stderr, then _exit(EXIT_STARTUP_ERROR). */
__attribute__((noreturn, format(printf, 1, 2))) void log_fatal_startup(const char *format, ...);
/* "arenashim: internal error: MESSAGE\n" on stderr, then _exit(EXIT_INTERNAL_ERROR). */
__attribute__((noreturn)) void log_internal_error(const char *message);

/* Writes all of text to fd, retrying short writes and interruptions; false on an error. */
bool write_all(int fd, const char *text, size_t len);
/* Writes text to path whole or not at all: to a fresh name beside it, then renamed.  The
 * temporary name is fresh (mkostemp: O_EXCL, mode 0600), so nothing planted there is written
 * through; rename replaces a link at the target instead of following it. */
void file_write_atomically(const char *path, const char *text, size_t len);
/* Expands "%p" in pattern to the process id, so each process of a tree gets its own file. */
void path_expand(char *out, size_t len, const char *pattern);
/* Whether the log named by pattern can be opened for appending, without creating it: an
 * existing file is opened (never through a symbolic link at the path: the report would go
 * wherever it points, with this process's rights) and closed; a missing one needs a directory
 * this process can write.  false with errno set when it cannot; path gets the expanded name. */
bool log_check(const char *pattern, char *path, size_t path_len);
/* The log becomes the file named by pattern (made absolute against the current directory
 * now), created 0644 at most and opened for appending at the first message: a process with
 * nothing to say holds no descriptor of ours and creates no file, so a program that lists or
 * numbers its descriptors sees none, and a process that changes user before exec (su, setpriv,
 * subprocess's user=) finds no file of its process id made by the user it was.  When the file
 * cannot be opened then, messages go to stderr. */
void log_open_later(const char *pattern);
/* In a forked child: when the log names the process ("%p"), the inherited one is closed and
 * the child's own file opened at its first message (log_open_later's directory, not the
 * child's current one). */
void log_fork_child(void);

#endif
