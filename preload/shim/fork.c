/*
 * fork.c — keeping every lock whole across fork().
 *
 * Layer: preload, shim.  A fork while another thread holds one of arenashim's locks would
 * leave the child waiting for a thread that does not exist there (gperftools #499, jemalloc
 * #2019).  The locks that guard structures the child goes on using (the scan, the report
 * writer, the core's chunk table, thread list and pools) are taken before fork and released
 * in both processes, so their structures are whole in the child; every other lock, held only
 * for short table updates, is reset in the child.  The child's log reopens, at its first
 * message, when log_path names the process ("%p").
 */
#include "shim.h"

#include <pthread.h>

#include "collector.h"
#include "dangling.h"
#include "discover.h"
#include "heap_ranges.h"
#include "hook.h"
#include "log.h"
#include "markers.h"
#include "report.h"
#include "symbolize.h"
#include "timeseries.h"

static void fork_prepare(void)
{
    report_unwind_fork_prepare(); /* first: a walk in progress may need any lock below */
    collector_lock();
    report_lock();
    core_lock_all();
    timeseries_lock();
}

static void fork_parent(void)
{
    timeseries_unlock();
    core_unlock_all();
    report_unlock();
    collector_unlock();
    report_unwind_fork_parent();
}

static void fork_child(void)
{
    timeseries_unlock();
    core_fork_child(bound_thread);
    report_fork_child();
    report_unwind_fork_child();
    collector_fork_child();
    signals_fork_child();
    dangling_fork_child();
    heap_ranges_fork_child();
    symbolize_fork_child();
    markers_fork_child();
    shadow_stack_fork_child();
    discover_fork_child();
    binding_fork_child();
    /* A child that does not exec reports into its own file, opened when it has something to
     * say: one that changes user and execs must not find a file of its process id created by
     * this user (test_subprocess's test_user: the exec'd image could not open it). */
    log_fork_child();
}

void fork_handlers_install(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}
