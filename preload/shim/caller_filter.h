/*
 * caller_filter.h — modules whose allocations bypass regions (see caller_filter.c).
 */
#ifndef ARENASHIM_PRELOAD_CALLER_FILTER_H
#define ARENASHIM_PRELOAD_CALLER_FILTER_H

#include <stdbool.h>
#include <stdint.h>

#include "core.h"

#define CALLER_FILTER_MAX 32
struct caller_filter {
    uintptr_t low, span; /* the hull of all ranges: [low, low + span) */
    unsigned count;
    uintptr_t ranges[CALLER_FILTER_MAX][2];
};
extern struct caller_filter excluded_callers;

void caller_filter_init(const struct options *options);
/* After the list of loaded objects changed: excluded modules loaded later join the filter. */
void caller_filter_refresh(void);

/* Does an allocation whose immediate caller is at pc bypass regions? */
static inline bool caller_is_excluded(const void *pc)
{
    uintptr_t address = (uintptr_t)pc;
    /* One range covering them all first: the program's own code lies far below the
     * libraries, so its calls are told apart with two compares. */
    if (address - excluded_callers.low >= excluded_callers.span)
        return false;
    for (unsigned i = 0; i < excluded_callers.count; i++)
        if (address - excluded_callers.ranges[i][0] < excluded_callers.ranges[i][1] - excluded_callers.ranges[i][0])
            return true;
    return false;
}

#endif
