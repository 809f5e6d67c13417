/*
 * stack_table.c — deduplicated backtraces, named by a small id.
 *
 * Layer: core.  Allocation sites (trace_allocs), region begin and end sites (verbose) and
 * escape sites are backtraces; the same few stacks recur millions of times, so each distinct
 * stack is stored once and referred to by a 32-bit id (0 = none).  An open-addressing hash
 * table of ids over an array of records, both in metadata; ids are indexes + 1 and are never
 * reused.  The table is bounded: when full, new stacks get id 0 and reports say the site is
 * unknown.  Interning takes a spin lock: it runs only for traced allocations and reports,
 * never on the untraced fast path.
 */
#include "internal.h"

#include <string.h>

#define STACK_TABLE_CAPACITY 65536
#define HASH_SLOTS (2 * STACK_TABLE_CAPACITY)

static struct {
    spin_lock lock;
    uint32_t count;
    struct stack_record *records;
    struct stack_record *unpublished_records; /* had, until the slots are too */
    uint32_t *slots; /* id, or 0 for empty */
} table;

static uint64_t hash_stack(const uintptr_t *pcs, unsigned depth)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ depth;
    for (unsigned i = 0; i < depth; i++) {
        h ^= pcs[i];
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 33;
    }
    return h ? h : 1;
}

uint32_t stack_table_intern(const uintptr_t *pcs, unsigned depth, int32_t marker)
{
    if (depth == 0)
        return 0;
    if (depth > STACK_DEPTH_MAX)
        depth = STACK_DEPTH_MAX;
    uint64_t hash = hash_stack(pcs, depth);
    spin_lock_acquire(&table.lock);
    if (table.records == NULL) {
        /* Each part is asked for until it is had, and kept once it is: when metadata runs
         * out, a retry must not take again what an earlier try got. */
        if (table.slots == NULL)
            table.slots = metadata_map(sizeof(uint32_t) * HASH_SLOTS);
        if (table.unpublished_records == NULL)
            table.unpublished_records = metadata_map(sizeof(struct stack_record) * STACK_TABLE_CAPACITY);
        if (table.unpublished_records == NULL || table.slots == NULL) {
            spin_lock_release(&table.lock);
            return 0;
        }
        /* Published for stack_table_get, which reads without the lock. */
        __atomic_store_n(&table.records, table.unpublished_records, __ATOMIC_RELEASE);
    }
    uint32_t id = 0;
    for (uint64_t slot = hash % HASH_SLOTS;; slot = (slot + 1) % HASH_SLOTS) {
        uint32_t existing = table.slots[slot];
        if (existing == 0) {
            if (table.count == STACK_TABLE_CAPACITY)
                break;
            struct stack_record *record = &table.records[table.count];
            record->hash = hash;
            record->depth = depth;
            record->marker = marker;
            memcpy(record->pcs, pcs, depth * sizeof(uintptr_t));
            id = table.count + 1;
            /* The record is complete before its id is visible to stack_table_get. */
            __atomic_store_n(&table.count, id, __ATOMIC_RELEASE);
            __atomic_store_n(&table.slots[slot], id, __ATOMIC_RELEASE);
            break;
        }
        const struct stack_record *record = &table.records[existing - 1];
        if (record->hash == hash && record->depth == depth &&
            memcmp(record->pcs, pcs, depth * sizeof(uintptr_t)) == 0) {
            id = existing;
            break;
        }
    }
    spin_lock_release(&table.lock);
    return id;
}

struct stack_record *stack_table_get(uint32_t id)
{
    struct stack_record *records = __atomic_load_n(&table.records, __ATOMIC_ACQUIRE);
    if (id == 0 || id > __atomic_load_n(&table.count, __ATOMIC_ACQUIRE) || records == NULL)
        return NULL;
    return &records[id - 1];
}

uint32_t stack_table_count(void)
{
    return __atomic_load_n(&table.count, __ATOMIC_ACQUIRE);
}

void stack_table_fork_child(void)
{
    spin_lock_reset(&table.lock);
}
