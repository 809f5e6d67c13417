/*
 * lock.h — the one lock type of arenashim's slow paths.
 *
 * Layer: core, public (the preload's slow paths use it too).  A test-and-test-and-set
 * spinlock that yields after a short spin: it needs no initialisation call and no memory from
 * anywhere, so it can be reset in a fork child by a plain store, and it never calls into the
 * C library while held.  Critical sections under it are short (list and bitmap updates);
 * system calls are made outside.
 */
#ifndef ARENASHIM_LOCK_H
#define ARENASHIM_LOCK_H

#include <sched.h>
#include <stdbool.h>

#include "core_arch.h"

typedef struct { int held; } spin_lock;

#define SPIN_LOCK_INIT { 0 }

static inline bool spin_try_lock(spin_lock *lock)
{
    return !__atomic_load_n(&lock->held, __ATOMIC_RELAXED) &&
           !__atomic_exchange_n(&lock->held, 1, __ATOMIC_ACQUIRE);
}

static inline void spin_lock_acquire(spin_lock *lock)
{
    for (unsigned spins = 0; !spin_try_lock(lock); spins++) {
        if (spins < 64)
            cpu_relax();
        else
            sched_yield();
    }
}

static inline void spin_lock_release(spin_lock *lock)
{
    __atomic_store_n(&lock->held, 0, __ATOMIC_RELEASE);
}

/* For a fork child: the thread that held the lock does not exist there. */
static inline void spin_lock_reset(spin_lock *lock)
{
    __atomic_store_n(&lock->held, 0, __ATOMIC_RELAXED);
}

#endif
