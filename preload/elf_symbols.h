/*
 * elf_symbols.h — finding functions in loaded modules by name or by offset.
 *
 * Layer: preload.  Markers name functions; this resolves them against a module's file
 * (.dynsym, then .symtab where the file has one) and bounds them with .eh_frame_hdr when the
 * symbol gives no size (MODULE+0xOFFSET markers).  Files are mapped read-only for the look-up
 * and unmapped after: no malloc, so it also runs after a dlopen inside a region.
 */
#ifndef ARENASHIM_PRELOAD_ELF_SYMBOLS_H
#define ARENASHIM_PRELOAD_ELF_SYMBOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loaded_module {
    char path[512];       /* file to read ("" never: the executable is /proc/self/exe) */
    const char *file_name;/* base name of path, for matching MODULE */
    uintptr_t load_base;  /* dlpi_addr */
    uintptr_t text_start, text_end; /* executable PT_LOAD, for sanity checks */
    bool is_executable;
    const void *eh_frame_hdr; /* PT_GNU_EH_FRAME in memory, or NULL */
};

struct function_bounds {
    uintptr_t start, end; /* end == start when unknown */
    bool is_ifunc;
};

/* Looks name up as a defined function; false when the module has no such symbol. */
bool elf_find_function(const struct loaded_module *module, const char *name,
                       struct function_bounds *out);
/* The function starting exactly at address, bounded by .eh_frame_hdr; false if no FDE
 * starts there. */
bool elf_function_at(const struct loaded_module *module, uintptr_t address,
                     struct function_bounds *out);

/* Does a module's file name match what the user wrote (exclude=, MODULE:)?  The whole name,
 * or the name up to a '.': "libc.so" matches "libc.so.6", "libxml2" "libxml2.so.2". */
bool elf_file_name_matches(const char *file_name, const char *pattern);

/* Calls visit for every loaded module; stops when visit returns false. */
void elf_for_each_module(bool (*visit)(const struct loaded_module *module, void *data), void *data);

#endif
