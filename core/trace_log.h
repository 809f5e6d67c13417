/*
 * trace_log.h — which stack allocated which region object (trace_allocs).
 *
 * Layer: core, private (core.h has the record and the look-up the preload uses).  A region
 * that traces allocations keeps a list of blocks of records {address, size, stack id}.  When
 * the region ends, its dead-range records share the list (reference counted), so a dangling
 * access or a late free can name the allocation site long after the object's memory was
 * faulted.  The list goes when the last chunk holding the region's memory is released by a
 * scan.
 *
 * Appending is O(1).  At region end the log is sealed: an index of its records sorted by
 * address is built, so the look-ups that follow (every dangling access, every late free of
 * a traced object) are a binary search, not a walk over the region's whole log.
 */
#ifndef ARENASHIM_CORE_TRACE_LOG_H
#define ARENASHIM_CORE_TRACE_LOG_H

#include "internal.h"

#define TRACE_BLOCK_RECORDS 30 /* small: a sampled region needs one or two, and fresh metadata pages cost faults */

struct trace_block {
    struct trace_block *next;
    uint32_t count;
    uint32_t references; /* head block only: the region plus each dead range */
    /* Head block only, from sealing on: every record, sorted by (address, sequence). */
    struct trace_record **index;
    uint32_t index_count;
    uint32_t total;      /* head block only: records in the whole log */
    struct trace_record records[TRACE_BLOCK_RECORDS];
};

/* At region end, before the log is shared: builds the sorted index (skipped, and look-ups
 * stay linear, when metadata is exhausted). */
void trace_log_seal(struct trace_block *head);
void trace_log_retain(struct trace_block *head);
void trace_log_release(struct trace_block *head);
void trace_log_fork_child(void);

#endif
