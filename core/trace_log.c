/*
 * trace_log.c — per-region allocation records (see trace_log.h).
 *
 * Layer: core.  Blocks come from a fixed pool in metadata; appends are by the region's
 * owner only, so they need no lock; reference counts are atomic because a scan releases
 * chunks from another thread.
 */
#include "trace_log.h"

#include "internal.h"

static struct fixed_pool block_pool = FIXED_POOL_INIT(struct trace_block);

bool trace_log_append(struct trace_block **head, uintptr_t address, uint64_t size, uint32_t stack)
{
    struct trace_block *block = *head;
    if (block == NULL || block->count == TRACE_BLOCK_RECORDS) {
        struct trace_block *fresh = fixed_pool_alloc(&block_pool);
        if (fresh == NULL)
            return false;
        /* The newest block goes first; the head carries the reference count. */
        fresh->next = block;
        fresh->references = block ? block->references : 1;
        *head = fresh;
        block = fresh;
    }
    struct trace_record *record = &block->records[block->count];
    record->address = address;
    record->size = size > UINT32_MAX ? UINT32_MAX : (uint32_t)size;
    record->stack = stack;
    record->escaped = 0;
    __atomic_store_n(&block->count, block->count + 1, __ATOMIC_RELEASE);
    return true;
}

struct trace_record *trace_log_find(struct trace_block *head, uintptr_t address)
{
    for (struct trace_block *block = head; block; block = block->next) {
        uint32_t count = __atomic_load_n(&block->count, __ATOMIC_ACQUIRE);
        for (uint32_t i = count; i > 0; i--) {
            struct trace_record *record = &block->records[i - 1];
            /* The object's header counts as the object: realloc and malloc_usable_size read
             * it, and a fault there is an access to this object. */
            uintptr_t first = record->address - OBJECT_HEADER_SIZE;
            if (address >= first && address - first < OBJECT_HEADER_SIZE + (record->size ? record->size : 1))
                return record;
        }
    }
    return NULL;
}

void trace_log_fork_child(void)
{
    spin_lock_reset(&block_pool.lock);
}

void trace_log_retain(struct trace_block *head)
{
    if (head)
        __atomic_add_fetch(&head->references, 1, __ATOMIC_RELAXED);
}

void trace_log_release(struct trace_block *head)
{
    if (head == NULL || __atomic_sub_fetch(&head->references, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    while (head) {
        struct trace_block *next = head->next;
        fixed_pool_free(&block_pool, head);
        head = next;
    }
}
