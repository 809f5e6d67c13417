/*
 * escape.c — counting objects that escaped their region.
 *
 * Layer: core.  An object escapes when it is touched or freed after its region ended (the
 * fault handler and free() find it in dead memory).  Each escaped object counts once for its
 * marker and its allocation site, however often it is touched or freed; a late free counts
 * once more as such.  A traced object is known by its trace record; an untraced one only by
 * the address used, in a bounded set keyed by (address, region).
 */
#include "internal.h"
#include "trace_log.h"

/* Objects seen escaping without a trace record, keyed by (address, region): a program that
 * frees or touches one dead object a thousand times has one escape.  Bounded: once full,
 * new escapes are counted without deduplication. */
#define ESCAPE_SET_SLOTS 16384

static struct {
    spin_lock lock;
    unsigned used;
    uint64_t (*slots)[2];
} escape_set;

static bool escape_first_seen(uintptr_t address, uint64_t region_id)
{
    bool first = true;
    spin_lock_acquire(&escape_set.lock);
    if (escape_set.slots == NULL)
        escape_set.slots = metadata_map(sizeof(uint64_t[2]) * ESCAPE_SET_SLOTS);
    if (escape_set.slots != NULL) {
        uint64_t hash = (address ^ (region_id * 0x9e3779b97f4a7c15ull)) * 0xff51afd7ed558ccdull;
        for (uint64_t i = 0, slot = (hash >> 32) % ESCAPE_SET_SLOTS; i < ESCAPE_SET_SLOTS;
             i++, slot = (slot + 1) % ESCAPE_SET_SLOTS) {
            uint64_t *entry = escape_set.slots[slot];
            if (entry[0] == address && entry[1] == region_id) {
                first = false;
                break;
            }
            if (entry[0] == 0) {
                if (escape_set.used < ESCAPE_SET_SLOTS * 3 / 4) {
                    entry[0] = address;
                    entry[1] = region_id;
                    escape_set.used++;
                }
                break;
            }
        }
    }
    spin_lock_release(&escape_set.lock);
    return first;
}

uint32_t escape_note(uintptr_t address, enum escape_kind kind, bool *first)
{
    struct dangling_info info;
    *first = true;
    if (!dangling_lookup(address, &info) || !info.found_range)
        return 0;
    int32_t marker = info.range.marker;
    struct marker_counters *stats = marker_counters_of(marker);
    /* One object, one escape, however often it is touched or freed; and one late free,
     * however often it is freed, also when it was touched first. */
    struct trace_record *record = trace_log_find(info.range.trace, address);
    bool object_first, kind_first;
    if (record) {
        uint32_t kind_bit = 1u << kind;
        uint32_t before = __atomic_fetch_or(&record->escaped, kind_bit, __ATOMIC_RELAXED);
        object_first = before == 0;
        kind_first = !(before & kind_bit);
    } else {
        /* Untraced: the object is known only by the address used (two keys per region). */
        uint64_t key = info.range.region_id * 4;
        object_first = escape_first_seen(address, key);
        kind_first = escape_first_seen(address, key + 1 + (uint64_t)kind);
    }
    *first = kind_first;
    if (object_first) {
        struct stack_record *site = record ? stack_table_get(record->stack) : NULL;
        if (site)
            __atomic_add_fetch(&site->escapes, 1, __ATOMIC_RELAXED);
        if (stats)
            __atomic_add_fetch(&stats->escapes, 1, __ATOMIC_RELAXED);
    }
    if (stats && kind == ESCAPE_FREE && kind_first)
        __atomic_add_fetch(&stats->escaped_frees, 1, __ATOMIC_RELAXED);
    return record ? record->stack : 0;
}

void escape_fork_child(void)
{
    spin_lock_reset(&escape_set.lock);
}
