/*
 * process.c — telling launchers from the programs they start (see process.h).
 *
 * Layer: preload, lib.
 */
#include "process.h"

#include <string.h>
#include <unistd.h>

/* Programs that start the user's program rather than being it: with one of these first on
 * the command line (`strace ./server`, `perf record ./server`, `sh -c ./server`), the program
 * it runs is the root process. */
bool process_is_launcher(void)
{
    static const char *launchers[] = {
        "env", "time", "timeout", "nice", "ionice", "taskset", "chrt", "numactl", "setarch", "prlimit",
        "stdbuf", "nohup", "flock", "xargs", "strace", "ltrace", "perf", "gdb", "valgrind",
        "sh", "bash", "dash", "zsh", "ksh", "busybox", "sudo", "su", "runuser", "setsid",
        "hyperfine", "make", "catchsegv", "unshare", "nsenter", NULL,
    };
    char path[512];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0)
        return false;
    path[n] = '\0';
    const char *name = strrchr(path, '/');
    name = name ? name + 1 : path;
    for (unsigned i = 0; launchers[i]; i++) {
        size_t len = strlen(launchers[i]);
        /* "python3.11", "perf_6.1": a launcher's name followed by a version. */
        if (strncmp(name, launchers[i], len) == 0 &&
            (name[len] == '\0' || name[len] == '.' || name[len] == '_' || name[len] == '-' ||
             (name[len] >= '0' && name[len] <= '9')))
            return true;
    }
    return false;
}
