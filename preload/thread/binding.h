/*
 * binding.h — each thread's binding to the core: its record and its innermost region.
 *
 * Layer: preload, thread.  The malloc fast path reads one initial-exec TLS slot, the
 * thread's innermost open region (NULL outside regions): one load and one branch outside
 * regions.  The core's thread_state is made when a thread first opens a region, and ended at
 * thread exit (its open regions end, its spare chunks go to quarantine).  Also here: the
 * thread's cache of region records (the hooks open regions from it without a lock) and the
 * suspension of regions inside dlopen.
 *
 * Suspension.  While bound_suspended is set, the regions from bound_suspended_at outward are
 * hidden from allocation: inside dlopen, whose library constructors must not allocate into
 * the caller's region.  dlopen is hooked at its entry only (its return address must stay the
 * caller's: the dynamic linker searches the caller's RUNPATH), so the end is noticed lazily:
 * the suspension ends at the first hooked or API call whose return slot lies at or above
 * dlopen's own, i.e. made from the frame that called dlopen or one further out.  Until then
 * that frame's allocations go to the heap, which is always safe.
 */
#ifndef ARENASHIM_PRELOAD_THREAD_BINDING_H
#define ARENASHIM_PRELOAD_THREAD_BINDING_H

#include "core.h"
#include "visibility.h"

/* The calling thread's innermost open region (NULL outside regions) and its record. */
extern __thread struct region *bound_region TLS_INITIAL_EXEC;
extern __thread struct thread_state *bound_thread TLS_INITIAL_EXEC;
extern __thread bool bound_suspended TLS_INITIAL_EXEC;
extern __thread struct region *bound_suspended_at TLS_INITIAL_EXEC;
extern __thread uintptr_t bound_suspended_below TLS_INITIAL_EXEC; /* dlopen's return slot */
/* Region records ready for use, linked by their outer field. */
extern __thread struct region *bound_region_cache TLS_INITIAL_EXEC;

/* Creates the thread-exit key: after start-up, before any thread binds. */
bool binding_init(void);
/* Called at the end of every thread's exit (the hook layer pools its shadow stack there). */
void binding_set_thread_exit_listener(void (*listener)(void));
/* The thread's record, created on first use; NULL when metadata is exhausted.  The core must
 * be initialised. */
struct thread_state *binding_current_thread(void);
/* Refills the thread's cache of region records; false when none could be had. */
bool binding_fill_region_cache(void);
/* In a fork child: the surviving thread's record gets its new tid. */
void binding_fork_child(void);

/* Mirrors the core's innermost region into the TLS slot after a begin or end. */
static inline void binding_sync_region(struct thread_state *thread)
{
    struct region *region = thread ? thread->innermost : NULL;
    if (bound_suspended && region == bound_suspended_at)
        region = NULL;
    bound_region = region;
}

/* Ends the suspension when slot, the return slot of the hooked or API call being entered or
 * left, shows that the thread is back outside dlopen. */
static inline void binding_suspension_check(uintptr_t slot, struct thread_state *thread)
{
    if (unlikely(bound_suspended) && slot >= bound_suspended_below) {
        bound_suspended = false;
        binding_sync_region(thread);
    }
}

/* Hides the thread's regions from here on, until a call returns at or above slot (dlopen's
 * entry); a suspension already in force stays (its slot is further out). */
static inline void binding_suspend_until_above(uintptr_t slot, struct thread_state *thread)
{
    binding_suspension_check(slot, thread);
    if (bound_suspended || thread == NULL)
        return;
    bound_suspended_below = slot;
    bound_suspended_at = thread->innermost;
    bound_suspended = true;
    binding_sync_region(thread);
}

#endif
