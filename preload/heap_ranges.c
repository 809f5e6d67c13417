/*
 * heap_ranges.c — which address ranges are jemalloc's heap, for the scan's referrer report.
 *
 * Layer: preload.  jemalloc cannot be asked about an arbitrary address (arenas.lookup faults
 * on addresses it never managed), so arenashim wraps the extent hooks of every arena at
 * start-up: each extent jemalloc maps is recorded here, each it unmaps is removed.  The
 * hooks call jemalloc's own ones for the work; all this adds is a table update, under a
 * lock that is never held across a call out.  Used only to name the kind of a referrer.
 */
#include "heap_ranges.h"

#include <jemalloc/jemalloc.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define HEAP_RANGE_SLOTS 131072 /* a power of two */
#define ARENAS_MAX 1024
#define TOMBSTONE ((uintptr_t)1)

/* Open addressing keyed by extent start: jemalloc splits, merges and unmaps extents all the
 * time, so recording and forgetting must be O(1); the rare "is this address heap?" question
 * of a scan report walks the slots.  Forgetting leaves a tombstone; when live entries and
 * tombstones fill three quarters of the table, the live ones are rehashed into the other of
 * two tables (metadata is never unmapped, so the two are reused in turn). */
static struct {
    spin_lock lock;
    unsigned live, occupied;
    uintptr_t (*slots)[2]; /* start (0 empty, TOMBSTONE deleted), end */
    uintptr_t (*spare)[2];
} table;

static extent_hooks_t *original_hooks[ARENAS_MAX];
static extent_hooks_t wrapped_hooks[ARENAS_MAX];

static size_t slot_of(uintptr_t start)
{
    return (size_t)((start >> 12) * 0x9e3779b97f4a7c15ull >> 47) & (HEAP_RANGE_SLOTS - 1);
}

static void insert(uintptr_t (*slots)[2], uintptr_t start, uintptr_t end)
{
    size_t reuse = SIZE_MAX;
    size_t i = slot_of(start);
    for (;; i = (i + 1) & (HEAP_RANGE_SLOTS - 1)) {
        if (slots[i][0] == start) {
            slots[i][1] = end;
            return;
        }
        if (slots[i][0] == TOMBSTONE && reuse == SIZE_MAX)
            reuse = i;
        if (slots[i][0] == 0)
            break;
    }
    if (reuse == SIZE_MAX) {
        reuse = i;
        table.occupied++;
    }
    slots[reuse][0] = start;
    slots[reuse][1] = end;
    table.live++;
}

static void rehash(void)
{
    uintptr_t (*from)[2] = table.slots, (*to)[2] = table.spare;
    for (size_t i = 0; i < HEAP_RANGE_SLOTS; i++)
        to[i][0] = to[i][1] = 0;
    table.live = table.occupied = 0;
    for (size_t i = 0; i < HEAP_RANGE_SLOTS; i++)
        if (from[i][0] > TOMBSTONE)
            insert(to, from[i][0], from[i][1]);
    table.slots = to;
    table.spare = from;
}

static void record(uintptr_t start, size_t size)
{
    spin_lock_acquire(&table.lock);
    if (table.slots) {
        if (table.occupied >= HEAP_RANGE_SLOTS * 3 / 4)
            rehash();
        if (table.occupied < HEAP_RANGE_SLOTS * 3 / 4)
            insert(table.slots, start, start + size);
    }
    spin_lock_release(&table.lock);
}

static void forget(uintptr_t start, size_t size)
{
    (void)size;
    spin_lock_acquire(&table.lock);
    if (table.slots) {
        for (size_t i = slot_of(start); table.slots[i][0] != 0; i = (i + 1) & (HEAP_RANGE_SLOTS - 1)) {
            if (table.slots[i][0] == start) {
                table.slots[i][0] = TOMBSTONE; /* keeps later entries of the probe reachable */
                table.live--;
                break;
            }
        }
    }
    spin_lock_release(&table.lock);
}

static extent_hooks_t *original_of(unsigned arena)
{
    return arena < ARENAS_MAX ? original_hooks[arena] : NULL;
}

static void *hook_alloc(extent_hooks_t *hooks, void *new_addr, size_t size, size_t alignment,
                        bool *zero, bool *commit, unsigned arena)
{
    (void)hooks;
    extent_hooks_t *original = original_of(arena);
    void *p = original->alloc(original, new_addr, size, alignment, zero, commit, arena);
    if (p)
        record((uintptr_t)p, size);
    return p;
}

static bool hook_dalloc(extent_hooks_t *hooks, void *addr, size_t size, bool committed, unsigned arena)
{
    (void)hooks;
    extent_hooks_t *original = original_of(arena);
    /* false means jemalloc unmapped it; true means it keeps it (retained): still its heap. */
    bool kept = original->dalloc ? original->dalloc(original, addr, size, committed, arena) : true;
    if (!kept)
        forget((uintptr_t)addr, size);
    return kept;
}

static void hook_destroy(extent_hooks_t *hooks, void *addr, size_t size, bool committed, unsigned arena)
{
    (void)hooks;
    extent_hooks_t *original = original_of(arena);
    if (original->destroy)
        original->destroy(original, addr, size, committed, arena);
    forget((uintptr_t)addr, size);
}


static bool hook_commit(extent_hooks_t *h, void *a, size_t s, size_t o, size_t l, unsigned arena)
{
    (void)h;
    extent_hooks_t *original = original_of(arena);
    return original->commit ? original->commit(original, a, s, o, l, arena) : true;
}

static bool hook_decommit(extent_hooks_t *h, void *a, size_t s, size_t o, size_t l, unsigned arena)
{
    (void)h;
    extent_hooks_t *original = original_of(arena);
    return original->decommit ? original->decommit(original, a, s, o, l, arena) : true;
}

static bool hook_purge_lazy(extent_hooks_t *h, void *a, size_t s, size_t o, size_t l, unsigned arena)
{
    (void)h;
    extent_hooks_t *original = original_of(arena);
    return original->purge_lazy ? original->purge_lazy(original, a, s, o, l, arena) : true;
}

static bool hook_purge_forced(extent_hooks_t *h, void *a, size_t s, size_t o, size_t l, unsigned arena)
{
    (void)h;
    extent_hooks_t *original = original_of(arena);
    return original->purge_forced ? original->purge_forced(original, a, s, o, l, arena) : true;
}

static bool hook_split(extent_hooks_t *h, void *a, size_t s, size_t sa, size_t sb, bool c, unsigned arena)
{
    (void)h;
    extent_hooks_t *original = original_of(arena);
    bool refused = original->split ? original->split(original, a, s, sa, sb, c, arena) : true;
    if (!refused) {
        forget((uintptr_t)a, s);
        record((uintptr_t)a, sa);
        record((uintptr_t)a + sa, sb);
    }
    return refused;
}

static bool hook_merge(extent_hooks_t *h, void *a, size_t sa, void *b, size_t sb, bool c, unsigned arena)
{
    (void)h;
    extent_hooks_t *original = original_of(arena);
    bool refused = original->merge ? original->merge(original, a, sa, b, sb, c, arena) : true;
    if (!refused) {
        forget((uintptr_t)a, sa);
        forget((uintptr_t)b, sb);
        record((uintptr_t)a, sa + sb);
    }
    return refused;
}

/* Wraps the extent hooks of the arenas jemalloc has initialised so far.  Arenas are made
 * lazily (threads are spread over them); hooking one initialises it, which costs about
 * 80 KiB each, so uninitialised ones are left alone and picked up by a later refresh (each
 * scan runs one).  Extents made before their arena was hooked are not known: the report then
 * says "anonymous mapping" rather than "jemalloc heap object". */
void heap_ranges_refresh(void)
{
    unsigned narenas = 0;
    size_t len = sizeof narenas;
    if (table.slots == NULL || mallctl("arenas.narenas", &narenas, &len, NULL, 0) != 0)
        return;
    if (narenas > ARENAS_MAX)
        narenas = ARENAS_MAX;
    for (unsigned i = 0; i < narenas; i++) {
        char name[64];
        bool initialized = false;
        if (original_hooks[i] != NULL)
            continue;
        snprintf(name, sizeof name, "arena.%u.initialized", i);
        len = sizeof initialized;
        if (mallctl(name, &initialized, &len, NULL, 0) != 0 || !initialized)
            continue;
        snprintf(name, sizeof name, "arena.%u.extent_hooks", i);
        extent_hooks_t *current = NULL;
        len = sizeof current;
        if (mallctl(name, &current, &len, NULL, 0) != 0 || current == NULL)
            continue;
        wrapped_hooks[i] = (extent_hooks_t){
            hook_alloc, hook_dalloc, hook_destroy, hook_commit, hook_decommit,
            current->purge_lazy ? hook_purge_lazy : NULL, current->purge_forced ? hook_purge_forced : NULL,
            hook_split, hook_merge,
        };
        __atomic_store_n(&original_hooks[i], current, __ATOMIC_RELEASE);
        extent_hooks_t *mine = &wrapped_hooks[i];
        mallctl(name, NULL, NULL, &mine, sizeof mine);
    }
}

void heap_ranges_init(void)
{
    table.slots = metadata_map(sizeof(uintptr_t[2]) * HEAP_RANGE_SLOTS);
    table.spare = metadata_map(sizeof(uintptr_t[2]) * HEAP_RANGE_SLOTS);
    if (table.spare == NULL)
        table.slots = NULL;
    heap_ranges_refresh();
}

void heap_ranges_fork_child(void)
{
    spin_lock_reset(&table.lock);
}

bool heap_ranges_contains(uintptr_t address)
{
    bool found = false;
    spin_lock_acquire(&table.lock);
    for (size_t i = 0; table.slots && i < HEAP_RANGE_SLOTS && !found; i++)
        found = table.slots[i][0] > TOMBSTONE &&
                address - table.slots[i][0] < table.slots[i][1] - table.slots[i][0];
    spin_lock_release(&table.lock);
    return found;
}
