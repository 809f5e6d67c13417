/*
 * metadata.c — arenashim's own memory: mmap-backed, never from malloc.
 *
 * Layer: core.  Everything the allocator keeps about itself (chunk table, bitmap, region and
 * thread records, dead-range records) is carved from mappings made here.  Each mapping is
 * registered so the conservative scanner skips it: this metadata names chunk addresses on
 * purpose (cursors, dead ranges) and must never count as a pointer that keeps a chunk alive.
 *
 * Most metadata is carved from one large MAP_NORESERVE area reserved on first use (pages
 * cost memory only when touched), so the scan's skip list stays a handful of ranges however
 * much metadata a long run accumulates.  Metadata is never unmapped: a range that left the
 * skip list while still registered, or the reverse, would let the scan miss a pointer.
 *
 * Fixed-size pools hand out zeroed objects from 64 KiB blocks and keep freed objects on a
 * free list; blocks are never returned, which bounds the work on the hot paths to a pop.
 */
#include "internal.h"

#include <string.h>
#include <sys/mman.h>

#define METADATA_RANGES_MAX 1024
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

#define METADATA_AREA_BYTES ((size_t)64 << 30)

static struct {
    spin_lock lock;
    uintptr_t cursor, end;
    bool failed;
} area;

static void *area_take(size_t bytes)
{
    void *p = NULL;
    spin_lock_acquire(&area.lock);
    if (area.end == 0 && !area.failed) {
        void *base = mmap(NULL, METADATA_AREA_BYTES, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (base == MAP_FAILED) {
            area.failed = true;
        } else {
            area.cursor = (uintptr_t)base;
            area.end = (uintptr_t)base + METADATA_AREA_BYTES;
            registry_add(area.cursor, area.end);
        }
    }
    if (area.end && area.end - area.cursor >= bytes) {
        p = (void *)area.cursor;
        area.cursor += bytes;
    }
    spin_lock_release(&area.lock);
    return p;
}

void *metadata_map(size_t bytes)
{
    bytes = align_up(bytes, PAGE_SIZE_BYTES);
    void *p = area_take(bytes);
    if (p)
        return p;
    p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    registry_add((uintptr_t)p, (uintptr_t)p + bytes);
    return p;
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
            char *block = metadata_map(POOL_BLOCK_BYTES);
            if (block == NULL) {
                spin_lock_release(&pool->lock);
                return NULL;
            }
            pool->block_cursor = block;
            pool->block_limit = block + POOL_BLOCK_BYTES;
        }
        object = pool->block_cursor;
        pool->block_cursor += align_up(pool->object_size, 16);
    }
    spin_lock_release(&pool->lock);
    memset(object, 0, pool->object_size);
    return object;
}

void fixed_pool_free(struct fixed_pool *pool, void *object)
{
    spin_lock_acquire(&pool->lock);
    *(void **)object = pool->free_list;
    pool->free_list = object;
    spin_lock_release(&pool->lock);
}
