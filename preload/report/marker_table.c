/*
 * marker_table.c — names and states of markers (see marker_table.h).
 *
 * Layer: preload, report.  Written at start-up and when a library loaded later resolves a
 * marker (one writer at a time: the marker layer's lock); read by reports from any thread.
 */
#include "marker_table.h"

#include <string.h>

#include "core.h"

static struct {
    unsigned count;
    struct marker_entry *entries;
} table;

bool marker_table_init(unsigned count)
{
    if (count == 0)
        return true;
    struct marker_entry *entries = metadata_alloc((size_t)count * sizeof *entries);
    if (entries == NULL)
        return false;
    table.entries = entries;
    __atomic_store_n(&table.count, count, __ATOMIC_RELEASE);
    return true;
}

unsigned marker_table_count(void)
{
    return __atomic_load_n(&table.count, __ATOMIC_ACQUIRE);
}

struct marker_entry *marker_table_entry(int32_t marker)
{
    return marker >= 0 && (unsigned)marker < marker_table_count() ? &table.entries[marker] : NULL;
}

void marker_table_refuse(int32_t marker, const char *reason)
{
    struct marker_entry *entry = marker_table_entry(marker);
    if (entry == NULL)
        return;
    size_t len = strlen(reason);
    if (len >= sizeof entry->reason)
        len = sizeof entry->reason - 1;
    memcpy(entry->reason, reason, len);
    entry->reason[len] = '\0';
    entry->refused = true;
}

const char *marker_name(int32_t marker)
{
    if (marker == MARKER_API)
        return "(api)";
    if (marker == MARKER_ARENA)
        return "(arena)";
    const struct marker_entry *entry = marker_table_entry(marker);
    return entry ? entry->spec : "(unknown)";
}
