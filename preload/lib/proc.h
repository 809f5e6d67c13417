/*
 * proc.h — reading /proc/self/maps and /proc/self/pagemap without malloc.
 *
 * Layer: preload, lib.  The scan reads the process's mappings while other threads are stopped,
 * so this uses only open/read/pread into caller-provided (metadata) buffers.
 */
#ifndef ARENASHIM_PRELOAD_LIB_PROC_H
#define ARENASHIM_PRELOAD_LIB_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mapping {
    uintptr_t start, end;
    bool readable, writable, executable, shared;
    bool file_backed; /* a path that is a real file (not [heap], [stack], anon shm) */
    const char *name; /* NUL-terminated, inside the reader's buffer; "" when anonymous */
};

/* Calls visit for each mapping; returns false when the file could not be read whole. */
bool proc_maps_for_each(char *buffer, size_t buffer_len,
                        void (*visit)(const struct mapping *mapping, void *data), void *data);

/* Present (or swapped) pages of [start, end), as runs, through pagemap; calls visit per run.
 * pagemap_fd < 0 means: treat every page as present. */
void pagemap_for_each_present_run(int pagemap_fd, uintptr_t start, uintptr_t end,
                                  void (*visit)(uintptr_t start, uintptr_t end, void *data),
                                  void *data);

/* The same through mincore(): only valid while no swap is active (swapped pages look absent). */
void mincore_for_each_present_run(uintptr_t start, uintptr_t end,
                                  void (*visit)(uintptr_t start, uintptr_t end, void *data),
                                  void *data);
bool swap_is_active(void);
/* Reads a small file (a /proc entry) into buffer, NUL-terminated; false if it cannot. */
bool proc_read_file(const char *path, char *buffer, size_t len);
/* The process's kernel mappings (lines of /proc/self/maps, what vm.max_map_count limits);
 * 0 when the file cannot be read. */
unsigned long proc_count_mappings(void);
/* vm.max_map_count (0 when it cannot be read). */
unsigned long proc_max_map_count(void);

#endif
