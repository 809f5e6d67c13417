/*
 * metadata.c — arenashim's own memory: mmap-backed, never from malloc.
 *
 * Layer: core.  Everything the allocator keeps about itself (chunk table, bitmap, region and
 * thread records, dead-range records) is carved from mappings made here.  Each mapping is
 * registered so the conservative scanner skips it: this metadata names chunk addresses on
 * purpose (cursors, dead ranges) and must never count as a pointer that keeps a chunk alive.
 *
 * Metadata is carved from large areas of reserved address space (below), so the scan's skip
 * list stays a handful of ranges however much metadata a long run accumulates.  Metadata is
 * never unmapped: a range that left the skip list while still registered, or the reverse,
 * would let the scan miss a pointer.
 *
 * Fixed-size pools hand out zeroed objects from 64 KiB blocks (one object's size when larger)
 * and keep freed objects on a free list; blocks are never returned, which bounds the work on
 * the hot paths to a pop.  Variable-sized metadata (metadata_alloc) is served by one pool per
 * power-of-two size class.
 */
#include "internal.h"

#include <string.h>

#define POOL_BLOCK_BYTES ((size_t)64 << 10)

static struct {
    spin_lock lock;
    unsigned count;
    uintptr_t ranges[METADATA_RANGES_MAX][2];
} registry;

static void registry_add(uintptr_t start, uintptr_t end)
{
    spin_lock_acquire(&registry.lock);
    if (registry.count < METADATA_RANGES_MAX) {
        registry.ranges[registry.count][0] = start;
        registry.ranges[registry.count][1] = end;
        __atomic_store_n(&registry.count, registry.count + 1, __ATOMIC_RELEASE);
    }
    spin_lock_release(&registry.lock);
}

void metadata_register(const void *start, size_t bytes)
{
    registry_add((uintptr_t)start, (uintptr_t)start + bytes);
}

/* Metadata is carved from areas of reserved address space, made readable-writable a step at
 * a time as the cursor reaches it: a never-used area costs neither memory nor commit charge
 * (vm.overcommit_memory=2 counts writable mappings, MAP_NORESERVE or not).  The first area
 * is large, so the skip list stays short; under RLIMIT_AS it is a small share of what the
 * limit leaves, and a full area is followed by another. */
#define METADATA_AREA_MAX ((size_t)64 << 30)
#define METADATA_AREA_MIN ((size_t)4 << 20)
#define METADATA_SHARE_OF_LIMIT 32
#define METADATA_COMMIT_STEP ((size_t)1 << 20)

static struct {
    spin_lock lock;
    uintptr_t cursor, committed, end;
} area;

static bool area_open(size_t at_least)
{
    size_t left = address_space_left();
    size_t bytes = left == SIZE_MAX ? METADATA_AREA_MAX : left / METADATA_SHARE_OF_LIMIT;
    if (bytes > METADATA_AREA_MAX)
        bytes = METADATA_AREA_MAX;
    size_t minimum = align_up(at_least > METADATA_AREA_MIN ? at_least : METADATA_AREA_MIN,
                              METADATA_COMMIT_STEP);
    if (bytes < minimum)
        bytes = minimum;
    void *base = address_space_reserve(&bytes, minimum, METADATA_COMMIT_STEP);
    if (base == NULL)
        return false;
    registry_add((uintptr_t)base, (uintptr_t)base + bytes);
    area.cursor = area.committed = (uintptr_t)base;
    area.end = (uintptr_t)base + bytes;
    return true;
}

/* Never decreases: metadata is never unmapped (pools reuse what is freed). */
static size_t area_taken_bytes;

size_t metadata_taken_bytes(void)
{
    return __atomic_load_n(&area_taken_bytes, __ATOMIC_RELAXED);
}

static void *area_take(size_t bytes)
{
    void *p = NULL;
    spin_lock_acquire(&area.lock);
    if (area.end - area.cursor >= bytes || area_open(bytes)) {
        uintptr_t need = area.cursor + bytes;
        if (need > area.committed) {
            uintptr_t to = align_up(need, METADATA_COMMIT_STEP);
            if (pages_make_accessible(area.committed, to - area.committed))
                area.committed = to;
        }
        if (need <= area.committed) {
            p = (void *)area.cursor;
            area.cursor = need;
            __atomic_fetch_add(&area_taken_bytes, bytes, __ATOMIC_RELAXED);
        }
    }
    spin_lock_release(&area.lock);
    return p;
}

void *metadata_map(size_t bytes)
{
    return area_take(align_up(bytes, PAGE_SIZE_BYTES));
}

unsigned metadata_ranges(uintptr_t (*ranges)[2], unsigned max)
{
    unsigned count = __atomic_load_n(&registry.count, __ATOMIC_ACQUIRE);
    if (count > max)
        count = max;
    memcpy(ranges, registry.ranges, count * sizeof registry.ranges[0]);
    return count;
}

void metadata_fork_child(void)
{
    spin_lock_reset(&registry.lock);
    spin_lock_reset(&area.lock);
}

void *fixed_pool_alloc(struct fixed_pool *pool)
{
    void *object;
    spin_lock_acquire(&pool->lock);
    object = pool->free_list;
    if (object) {
        pool->free_list = *(void **)object;
    } else {
        if ((size_t)(pool->block_limit - pool->block_cursor) < pool->object_size) {
            size_t block_bytes = pool->object_size > POOL_BLOCK_BYTES
                                     ? align_up(pool->object_size, PAGE_SIZE_BYTES) : POOL_BLOCK_BYTES;
            char *block = metadata_map(block_bytes);
            if (block == NULL) {
                spin_lock_release(&pool->lock);
                return NULL;
            }
            pool->block_cursor = block;
            pool->block_limit = block + block_bytes;
        }
        object = pool->block_cursor;
        pool->block_cursor += align_up(pool->object_size, 16);
    }
    size_t size = pool->object_size;
    spin_lock_release(&pool->lock);
    memset(object, 0, size);
    return object;
}

void fixed_pool_free(struct fixed_pool *pool, void *object)
{
    spin_lock_acquire(&pool->lock);
    *(void **)object = pool->free_list;
    pool->free_list = object;
    spin_lock_release(&pool->lock);
}

/* Size classes 2^6 .. 2^36 bytes. */
#define SIZE_CLASS_MIN_SHIFT 6
#define SIZE_CLASS_COUNT 31

static struct fixed_pool size_classes[SIZE_CLASS_COUNT];

static int size_class_of(size_t bytes)
{
    unsigned shift = SIZE_CLASS_MIN_SHIFT;
    while (shift < SIZE_CLASS_MIN_SHIFT + SIZE_CLASS_COUNT && ((size_t)1 << shift) < bytes)
        shift++;
    return shift < SIZE_CLASS_MIN_SHIFT + SIZE_CLASS_COUNT ? (int)(shift - SIZE_CLASS_MIN_SHIFT) : -1;
}

void *metadata_alloc(size_t bytes)
{
    int class = size_class_of(bytes);
    if (class < 0)
        return NULL;
    struct fixed_pool *pool = &size_classes[class];
    /* A pool's size is its class's, set at its first use under its lock (fixed_pool_alloc
     * reads it under the same lock).  Not a hot path: metadata is allocated on slow paths. */
    spin_lock_acquire(&pool->lock);
    if (pool->object_size == 0)
        pool->object_size = (size_t)1 << (class + SIZE_CLASS_MIN_SHIFT);
    spin_lock_release(&pool->lock);
    return fixed_pool_alloc(pool);
}

void metadata_free(void *object, size_t bytes)
{
    int class = size_class_of(bytes);
    if (object != NULL && class >= 0)
        fixed_pool_free(&size_classes[class], object);
}

void metadata_lock_pools(void)
{
    for (unsigned i = 0; i < SIZE_CLASS_COUNT; i++)
        spin_lock_acquire(&size_classes[i].lock);
}

void metadata_unlock_pools(void)
{
    for (unsigned i = SIZE_CLASS_COUNT; i > 0; i--)
        spin_lock_release(&size_classes[i - 1].lock);
}
