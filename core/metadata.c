/*
 * metadata.c — arenashim's own memory: mmap-backed, never from malloc.
 *
 * Layer: core.  Everything the allocator keeps about itself (chunk table, bitmap, region and
 * thread records, dead-range records) is carved from mappings made here.  Each mapping is
 * registered so the conservative scanner skips it: this metadata names chunk addresses on
 * purpose (cursors, dead ranges) and must never count as a pointer that keeps a chunk alive.
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

void *metadata_map(size_t bytes)
{
    bytes = align_up(bytes, PAGE_SIZE_BYTES);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    registry_add((uintptr_t)p, (uintptr_t)p + bytes);
    return p;
}

bool metadata_contains(uintptr_t address)
{
    unsigned count = __atomic_load_n(&registry.count, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < count; i++)
        if (address - registry.ranges[i][0] < registry.ranges[i][1] - registry.ranges[i][0])
            return true;
    return false;
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
