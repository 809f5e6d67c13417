/*
 * marker_table.h — the markers as reports and statistics name them.
 *
 * Layer: preload, report.  Marker ids are given by the marker layer (hook/markers.c) in the
 * order of ARENASHIM_REGIONS; it records here what each is called and whether it was hooked
 * or refused (and why).  The counters of each marker's regions are the core's
 * (marker_counters_of).  Entries live in metadata: any number of markers.
 */
#ifndef ARENASHIM_PRELOAD_MARKER_TABLE_H
#define ARENASHIM_PRELOAD_MARKER_TABLE_H

#include <stdbool.h>
#include <stdint.h>

struct marker_entry {
    char spec[400]; /* MODULE (128) + ":" + FUNC (256) */
    bool resolved;
    bool refused;
    char reason[160];
};

/* Room for count markers; false when metadata is exhausted. */
bool marker_table_init(unsigned count);
unsigned marker_table_count(void);
/* NULL for an id out of range. */
struct marker_entry *marker_table_entry(int32_t marker);
/* Marks a marker refused, keeping (the start of) the reason. */
void marker_table_refuse(int32_t marker, const char *reason);
/* What a report calls the regions of marker: its spec, "(api)", "(arena)" or "(unknown)". */
const char *marker_name(int32_t marker);

#endif
