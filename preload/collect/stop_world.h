/*
 * stop_world.h — stopping every other thread of the process for a scan.
 *
 * Layer: preload, collect.  Threads are found in /proc/self/task (so threads created before the
 * library was loaded, or by raw clone, are found too) and stopped by a signal whose handler
 * saves the thread's registers and stack pointer and waits, without taking any lock, until
 * the world is resumed.  A thread that does not answer within a bounded wait makes the stop
 * fail: the caller resumes whoever did stop and gives up the scan.
 */
#ifndef ARENASHIM_PRELOAD_STOP_WORLD_H
#define ARENASHIM_PRELOAD_STOP_WORLD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define STOPPED_THREADS_MAX 4096
#define SAVED_REGISTER_WORDS 96 /* general registers and the FP/SSE save area */

struct stopped_thread {
    pid_t tid;
    bool stopped;              /* answered: its registers and stack pointer are valid */
    int acknowledged;          /* stop generation the thread answered */
    uintptr_t stack_pointer;   /* at the moment it was interrupted */
    unsigned register_words;
    uintptr_t registers[SAVED_REGISTER_WORDS];
};

struct stopped_world {
    unsigned count;
    struct stopped_thread *threads; /* in metadata: skipped by the scan, read explicitly */
    pid_t unresponsive_tid;         /* set when stopping failed */
    /* Threads not to stop besides the caller: arenashim's marking threads. */
    unsigned leave_running_count;
    pid_t leave_running[16];
};

#include <signal.h>

/* The signal that stops threads (SIGRTMAX - 2) and its handler.  The shim installs it
 * (signals.c owns the dispositions of the signals arenashim uses, and interposes the calls
 * that would block or replace them); a delivery that is not a stop request -- the program's
 * own use of that signal -- goes to foreign. */
int stop_world_signal(void);
void stop_world_handler(int signal, siginfo_t *info, void *context);
void stop_world_set_foreign_handler(void (*foreign)(int signal, siginfo_t *info, void *context));
/* Stops every thread but the caller; false (with everyone resumed) when one did not stop. */
bool stop_world(struct stopped_world *world);
void resume_world(struct stopped_world *world);

#endif
