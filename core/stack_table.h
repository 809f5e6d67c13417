/*
 * stack_table.h — deduplicated backtraces, named by a small id.
 *
 * Layer: core.  Allocation sites (trace_allocs), region begin and end sites (verbose) and
 * escape sites are backtraces; the same few stacks recur millions of times, so each distinct
 * stack is stored once, in metadata, and referred to by a 32-bit id (0 = none).  The table is
 * bounded: when full, new stacks get id 0 and the report says the site is unknown.
 */
#ifndef ARENASHIM_CORE_STACK_TABLE_H
#define ARENASHIM_CORE_STACK_TABLE_H

#include <stdbool.h>
#include <stdint.h>

#define STACK_DEPTH_MAX 24
#define STACK_TABLE_CAPACITY 65536

struct stack_record {
    uint64_t hash;
    uint32_t depth;
    int32_t marker;          /* of the region the first allocation from here was in */
    uint64_t escapes;        /* objects from this site that escaped their region */
    uint64_t allocations;    /* traced allocations from this site */
    uintptr_t pcs[STACK_DEPTH_MAX];
};

/* Returns the id of the stack (interning it), 0 when the table is full or depth is 0. */
uint32_t stack_table_intern(const uintptr_t *pcs, unsigned depth, int32_t marker);
/* NULL for id 0 or an unknown id. */
struct stack_record *stack_table_get(uint32_t id);
uint32_t stack_table_count(void);
void stack_table_fork_child(void);

#endif
