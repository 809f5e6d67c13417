/*
 * binding.c — each thread's record, made on first use and ended at thread exit.
 *
 * Layer: preload, thread.  See binding.h.  Thread exit runs through a pthread key whose
 * destructor ends the thread's open regions; the key is made at start-up among glibc's first
 * 32, whose values live in the thread descriptor, so setting it allocates nothing.
 */
#include "binding.h"

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#define REGION_CACHE_REFILL 16

__thread struct region *bound_region TLS_INITIAL_EXEC;
__thread struct thread_state *bound_thread TLS_INITIAL_EXEC;
__thread bool bound_suspended TLS_INITIAL_EXEC;
__thread struct region *bound_suspended_at TLS_INITIAL_EXEC;
__thread uintptr_t bound_suspended_below TLS_INITIAL_EXEC;
__thread struct region *bound_region_cache TLS_INITIAL_EXEC;

static pthread_key_t thread_exit_key;
static void (*thread_exit_listener)(void);

void binding_set_thread_exit_listener(void (*listener)(void))
{
    thread_exit_listener = listener;
}

static void thread_exit(void *record)
{
    struct thread_state *thread = record;
    bound_region = NULL;
    thread_state_exit(thread);
    while (bound_region_cache) {
        struct region *next = bound_region_cache->outer;
        region_record_free(bound_region_cache);
        bound_region_cache = next;
    }
    bound_thread = NULL;
    if (thread_exit_listener)
        thread_exit_listener();
}

bool binding_init(void)
{
    return pthread_key_create(&thread_exit_key, thread_exit) == 0;
}

struct thread_state *binding_current_thread(void)
{
    struct thread_state *thread = bound_thread;
    if (likely(thread != NULL))
        return thread;
    thread = thread_state_create((pid_t)syscall(SYS_gettid));
    if (thread == NULL)
        return NULL;
    bound_thread = thread;
    pthread_setspecific(thread_exit_key, thread);
    return thread;
}

bool binding_fill_region_cache(void)
{
    if (bound_region_cache != NULL)
        return true;
    for (unsigned i = 0; i < REGION_CACHE_REFILL; i++) {
        struct region *region = region_record_new();
        if (region == NULL)
            break;
        region->outer = bound_region_cache;
        bound_region_cache = region;
    }
    return bound_region_cache != NULL;
}

void binding_fork_child(void)
{
    if (bound_thread)
        bound_thread->tid = (pid_t)syscall(SYS_gettid);
}
