/*
 * hook.h — function entry hooks and the per-thread shadow stack.
 *
 * Layer: preload, hook.  The architecture-neutral side of hooking: the hook table, the shadow
 * stack that remembers hijacked return addresses, and the entry/exit paths the
 * architecture's stubs call.  Lifecycle of one hooked call:
 *
 *   entry   the patched function jumps to its trampoline, which pushes the hook's index and
 *           jumps to the entry stub; hook_enter_fast opens the marker's region (unless the
 *           same marker is already open on this thread: recursion opens nothing), pushes a
 *           shadow entry {slot, real return address} and overwrites the return address with
 *           the exit stub; the stub then runs the relocated first instructions and resumes
 *           the function.
 *   exit    the function returns into the exit stub, which saves the return registers,
 *           pops the shadow entry whose slot matches, ends the region and returns to the
 *           real caller.
 *
 * Fast paths (runtime.c) are compiled with general registers only, so vector argument
 * and return registers survive them untouched; anything that may call the C library goes
 * through the slow paths, which the stubs wrap in a full XSAVE/XRSTOR.
 * Frames skipped by longjmp or a C++ exception are handled in unwind_guard.c.
 */
#ifndef ARENASHIM_PRELOAD_HOOK_H
#define ARENASHIM_PRELOAD_HOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch.h"
#include "binding.h"

/* Hooks: every marker, plus dlopen's, the link map's and discovery's.  A marker's hook index
 * is pushed by its trampoline; the table is static (its untouched pages cost nothing). */
#define HOOKS_MAX 65536
#define MARKERS_MAX (HOOKS_MAX - 64)
#define SHADOW_STACK_ENTRIES 4096

enum hook_kind {
    HOOK_MARKER = 0,   /* every call is a region of marker */
    HOOK_DLOPEN = 1,   /* dlopen/dlmopen: regions suspended from entry (binding.h); no return hook */
    HOOK_LINK_MAP = 2, /* the dynamic linker's debugger hook (r_debug.r_brk), called at every
                        * change of the list of loaded objects: waiting markers are resolved
                        * there, before the new objects' constructors run */
    HOOK_WATCH = 3,    /* no patch: a frame discovery follows (discover.c), its return address
                        * hijacked while it runs; its shadow entries carry an invocation */
};

struct hook {
    uintptr_t function;
    uintptr_t resume;      /* the trampoline's relocated instructions */
    int32_t marker;
    uint32_t kind;
};

extern struct hook hook_table[HOOKS_MAX];
extern unsigned hook_count;

struct shadow_entry {
    uintptr_t slot;        /* where the return address lived */
    uintptr_t real_return;
    uint32_t hook;
    uint8_t opened_region; /* false for a recursive entry of the same marker */
    union {
        struct region *region; /* the region this entry opened (HOOK_MARKER) */
        uint64_t invocation;   /* the followed call (HOOK_WATCH) */
    };
};

/* A thread's hooked frames, and how deep it is inside each marker (recursion of one marker
 * opens one region).  Made at the thread's first hooked call with one depth per marker (the
 * marker count is final before any hook can run), pooled at thread exit: a service that
 * makes threads for weeks reuses them. */
struct shadow_stack {
    unsigned depth;
    unsigned marker_slots;         /* entries of marker_depth */
    struct shadow_stack *next_free; /* in the pool */
    struct shadow_entry entries[SHADOW_STACK_ENTRIES];
    uint16_t marker_depth[];
};

/* Per-thread hook state. */
extern __thread struct shadow_stack *hook_shadow TLS_INITIAL_EXEC;

/* The markers' count, fixed at start-up before anything is hooked (markers.c). */
void hook_set_marker_slots(unsigned count);
/* The calling thread's shadow stack, made or taken from the pool; NULL without memory. */
struct shadow_stack *shadow_stack_of_thread(void);
/* Thread exit: its shadow stack goes back to the pool (its frames are gone). */
void shadow_stack_thread_exit(void);
void shadow_stack_fork_child(void);

/* Set when region begin/end record backtraces: the fast paths then defer to the slow ones. */
extern bool hook_fast_paths_enabled;
/* The fast entry path without the check of hook_fast_paths_enabled (the slow path's own). */
uintptr_t hook_enter_fast_unchecked(uintptr_t index, uintptr_t *slot);

/* Ends the regions of shadow entries whose frames lie below stack_pointer (longjmp), and
 * restores or re-installs return addresses around C++ unwinding. */
void shadow_unwind_to(uintptr_t stack_pointer);
void shadow_restore_return_addresses(void);
/* Puts the stub back into every slot that holds its real return address again. */
void shadow_reinstall_all(void);
void shadow_reinstall_return_addresses(uintptr_t stack_pointer);
/* For report.h's unwind fixup: the same two, only on a thread with hooked frames. */
void shadow_fixup_before_walk(void);
void shadow_fixup_after_walk(void);

/* Called when the list of loaded objects changed (the link-map hook), after waiting markers
 * were resolved: the allocation layer refreshes its caller filter there. */
void hook_set_link_map_listener(void (*listener)(void));

#endif
