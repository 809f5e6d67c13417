/*
 * trace_log.c — per-region allocation records (see trace_log.h).
 *
 * Layer: core.  Blocks come from a fixed pool in metadata; appends are by the region's
 * owner only, so they need no lock; reference counts are atomic because a scan releases
 * chunks from another thread.  The index built at sealing comes from metadata_alloc and
 * goes with the log.
 */
#include "trace_log.h"

static struct fixed_pool block_pool = FIXED_POOL_INIT(struct trace_block);

bool trace_log_append(struct trace_block **head, uintptr_t address, uint64_t size, uint32_t stack)
{
    struct trace_block *block = *head;
    if (block == NULL || block->count == TRACE_BLOCK_RECORDS) {
        struct trace_block *fresh = fixed_pool_alloc(&block_pool);
        if (fresh == NULL)
            return false;
        /* The newest block goes first; the head carries the reference count and the total. */
        fresh->next = block;
        fresh->references = block ? block->references : 1;
        fresh->total = block ? block->total : 0;
        *head = fresh;
        block = fresh;
    }
    struct trace_record *record = &block->records[block->count];
    record->address = address;
    record->size = size > UINT32_MAX ? UINT32_MAX : (uint32_t)size;
    record->stack = stack;
    record->escaped = 0;
    record->sequence = block->total++;
    __atomic_store_n(&block->count, block->count + 1, __ATOMIC_RELEASE);
    return true;
}

/* The object's header counts as the object: realloc and malloc_usable_size read it, and a
 * fault there is an access to this object. */
static bool record_contains(const struct trace_record *record, uintptr_t address)
{
    uintptr_t first = record->address - OBJECT_HEADER_SIZE;
    return address >= first && address - first < OBJECT_HEADER_SIZE + (record->size ? record->size : 1);
}

static bool record_before(const struct trace_record *a, const struct trace_record *b)
{
    return a->address < b->address || (a->address == b->address && a->sequence < b->sequence);
}

static void sift_down(struct trace_record **index, size_t root, size_t count)
{
    for (size_t child; (child = 2 * root + 1) < count; root = child) {
        if (child + 1 < count && record_before(index[child], index[child + 1]))
            child++;
        if (!record_before(index[root], index[child]))
            return;
        struct trace_record *swap = index[root];
        index[root] = index[child];
        index[child] = swap;
    }
}

void trace_log_seal(struct trace_block *head)
{
    if (head == NULL || head->index != NULL || head->total < 2 * TRACE_BLOCK_RECORDS)
        return; /* a log of a block or two is as quick to walk */
    size_t count = head->total;
    struct trace_record **index = metadata_alloc(count * sizeof *index);
    if (index == NULL)
        return;
    size_t n = 0;
    for (struct trace_block *block = head; block && n < count; block = block->next)
        for (uint32_t i = 0; i < block->count && n < count; i++)
            index[n++] = &block->records[i];
    /* Heap sort: in place, O(n log n) whatever the order, and no allocation (the C library's
     * qsort may call malloc, which is us). */
    for (size_t i = n / 2; i > 0; i--)
        sift_down(index, i - 1, n);
    for (size_t end = n; end > 1; end--) {
        struct trace_record *top = index[0];
        index[0] = index[end - 1];
        index[end - 1] = top;
        sift_down(index, 0, end - 1);
    }
    head->index_count = (uint32_t)n;
    __atomic_store_n(&head->index, index, __ATOMIC_RELEASE);
}

/* Objects of one region do not overlap, except where an undone allocation's bytes were handed
 * out again: a few entries before the greatest start at or below address are enough. */
#define INDEX_LOOK_BACK 8

static struct trace_record *find_in_index(struct trace_block *head, struct trace_record **index,
                                          uintptr_t address)
{
    size_t low = 0, high = head->index_count; /* first entry whose object starts above address */
    while (low < high) {
        size_t mid = (low + high) / 2;
        if (index[mid]->address - OBJECT_HEADER_SIZE <= address)
            low = mid + 1;
        else
            high = mid;
    }
    for (size_t i = low; i > 0 && low - i < INDEX_LOOK_BACK; i--)
        if (record_contains(index[i - 1], address))
            return index[i - 1];
    return NULL;
}

struct trace_record *trace_log_find(struct trace_block *head, uintptr_t address)
{
    struct trace_record **index = head ? __atomic_load_n(&head->index, __ATOMIC_ACQUIRE) : NULL;
    if (index != NULL)
        return find_in_index(head, index, address);
    for (struct trace_block *block = head; block; block = block->next) {
        uint32_t count = __atomic_load_n(&block->count, __ATOMIC_ACQUIRE);
        for (uint32_t i = count; i > 0; i--) {
            struct trace_record *record = &block->records[i - 1];
            if (record_contains(record, address))
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
    if (head->index)
        metadata_free(head->index, head->total * sizeof *head->index);
    while (head) {
        struct trace_block *next = head->next;
        fixed_pool_free(&block_pool, head);
        head = next;
    }
}
