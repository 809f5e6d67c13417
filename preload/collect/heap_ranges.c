/*
 * heap_ranges.c — which address ranges are jemalloc's heap, for the scan's referrer report.
 *
 * Layer: preload, collect.  jemalloc cannot be asked about an arbitrary address (arenas.lookup faults
 * on addresses it never managed), so arenashim wraps the extent hooks of every arena: each
 * range jemalloc maps is recorded here, each it unmaps is forgotten.  The hooks call
 * jemalloc's own ones for the work.  Used only to name the kind of a referrer.
 *
 * The record is a set of pages, not a list of extents: a two-level bitmap over the user
 * address space, one bit per 4 KiB page, a leaf per GiB made when a page in it is first
 * recorded.  jemalloc splits and merges extents all the time without changing which pages
 * are its heap, so split and merge cost nothing; mapping or unmapping a range sets or
 * clears its bits (a word per 256 KiB); the membership test is two loads, lock-free, so the
 * collector may ask with the world stopped.  Memory grows with the span of the heap (32 KiB
 * of bitmap per GiB), never with the number of extents: a table of extents made a heap of
 * half a million blocks crawl (issue 9).
 */
#include "heap_ranges.h"

#include <jemalloc/jemalloc.h>
#include <stdio.h>
#include <string.h>

#include "core.h"

#define ARENAS_MAX 1024
#define PAGE_SHIFT 12
#define LEAF_SHIFT 30                       /* a leaf covers 1 GiB */
#define ADDRESS_BITS 47                     /* x86-64 user space without 5-level paging */
#define LEAF_COUNT ((size_t)1 << (ADDRESS_BITS - LEAF_SHIFT))
#define LEAF_PAGES ((size_t)1 << (LEAF_SHIFT - PAGE_SHIFT))
#define LEAF_WORDS (LEAF_PAGES / 64)

static struct {
    spin_lock lock;      /* making leaves */
    uint64_t **leaves;   /* LEAF_COUNT pointers, NULL until a page of that GiB is recorded */
} pages;

static extent_hooks_t *original_hooks[ARENAS_MAX];
static extent_hooks_t wrapped_hooks[ARENAS_MAX];

static uint64_t *leaf_of(uintptr_t address, bool create)
{
    size_t index = address >> LEAF_SHIFT;
    uint64_t *leaf = __atomic_load_n(&pages.leaves[index], __ATOMIC_ACQUIRE);
    if (leaf != NULL || !create)
        return leaf;
    spin_lock_acquire(&pages.lock);
    leaf = pages.leaves[index];
    if (leaf == NULL) {
        leaf = metadata_map(LEAF_WORDS * sizeof(uint64_t));
        __atomic_store_n(&pages.leaves[index], leaf, __ATOMIC_RELEASE);
    }
    spin_lock_release(&pages.lock);
    return leaf;
}

/* Sets (heap) or clears the bits of the pages of [start, end).  Ranges beyond the covered
 * address space, and leaves that cannot be made (metadata exhausted), are left out: the
 * report then calls such a referrer an anonymous mapping, nothing worse. */
static void mark_pages(uintptr_t start, uintptr_t end, bool heap)
{
    if (pages.leaves == NULL)
        return;
    start &= ~(((uintptr_t)1 << PAGE_SHIFT) - 1);
    if (end > (uintptr_t)1 << ADDRESS_BITS)
        end = (uintptr_t)1 << ADDRESS_BITS;
    while (start < end) {
        uintptr_t leaf_end = (start | (((uintptr_t)1 << LEAF_SHIFT) - 1)) + 1;
        uintptr_t stop = end < leaf_end ? end : leaf_end;
        uint64_t *leaf = leaf_of(start, heap);
        size_t first = (start >> PAGE_SHIFT) & (LEAF_PAGES - 1);
        size_t last = ((stop - 1) >> PAGE_SHIFT) & (LEAF_PAGES - 1); /* inclusive */
        for (size_t word = first / 64; leaf != NULL && word <= last / 64; word++) {
            uint64_t mask = ~(uint64_t)0;
            if (word == first / 64)
                mask &= ~(uint64_t)0 << (first % 64);
            if (word == last / 64)
                mask &= ~(uint64_t)0 >> (63 - last % 64);
            if (heap)
                __atomic_fetch_or(&leaf[word], mask, __ATOMIC_RELAXED);
            else
                __atomic_fetch_and(&leaf[word], ~mask, __ATOMIC_RELAXED);
        }
        start = stop;
    }
}

static void record(uintptr_t start, size_t size)
{
    mark_pages(start, start + size, true);
}

static void forget(uintptr_t start, size_t size)
{
    mark_pages(start, start + size, false);
}

/* Split and merge leave the heap's pages as they are, but they also show extents mapped
 * before their arena was hooked: those are recorded once, on first sight (a range is always
 * recorded whole, so its first page tells). */
static void learn(uintptr_t start, size_t size)
{
    if (!heap_ranges_contains(start))
        record(start, size);
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
    learn((uintptr_t)a, s);
    return original->split ? original->split(original, a, s, sa, sb, c, arena) : true;
}

static bool hook_merge(extent_hooks_t *h, void *a, size_t sa, void *b, size_t sb, bool c, unsigned arena)
{
    (void)h;
    extent_hooks_t *original = original_of(arena);
    learn((uintptr_t)a, sa);
    learn((uintptr_t)b, sb);
    return original->merge ? original->merge(original, a, sa, b, sb, c, arena) : true;
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
    if (pages.leaves == NULL || mallctl("arenas.narenas", &narenas, &len, NULL, 0) != 0)
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
    pages.leaves = metadata_map(LEAF_COUNT * sizeof(uint64_t *));
    heap_ranges_refresh();
}

void heap_ranges_fork_child(void)
{
    spin_lock_reset(&pages.lock);
}

bool heap_ranges_contains(uintptr_t address)
{
    if (pages.leaves == NULL || address >> ADDRESS_BITS != 0)
        return false;
    const uint64_t *leaf = leaf_of(address, false);
    size_t page = (address >> PAGE_SHIFT) & (LEAF_PAGES - 1);
    return leaf != NULL && (__atomic_load_n(&leaf[page / 64], __ATOMIC_RELAXED) >> (page % 64)) & 1;
}
