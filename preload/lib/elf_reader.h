/*
 * elf_reader.h — the one ELF reader: loaded modules, their functions by name and by address.
 *
 * Layer: preload, lib.  Markers name functions, resolved against a module's file (.dynsym,
 * then .symtab where the file has one) and bounded with .eh_frame_hdr when the symbol gives
 * no size (MODULE+0xOFFSET markers); reports name addresses (the function containing one).
 * Files are mapped read-only, never read through malloc or stdio, so this also runs after a
 * dlopen inside a region and in the SIGSEGV handler.
 */
#ifndef ARENASHIM_PRELOAD_LIB_ELF_H
#define ARENASHIM_PRELOAD_LIB_ELF_H

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

/* A module's file, mapped read-only whole; its section headers were checked to lie inside. */
struct elf_file {
    const uint8_t *data;
    size_t size;
};

/* Maps path and checks it is a 64-bit ELF file; false otherwise (nothing to unmap). */
bool elf_file_map(const char *path, struct elf_file *file);
void elf_file_unmap(struct elf_file *file);
/* Is the file an executable linked at its load address (ET_EXEC, not position independent)? */
bool elf_file_is_fixed_address(const struct elf_file *file);
/* The function symbol (.symtab or .dynsym) containing the file offset: its name (cut to
 * name_len) and the offset from its start.  false when none does. */
bool elf_file_function_containing(const struct elf_file *file, uintptr_t offset, char *name,
                                  size_t name_len, uintptr_t *from_start);

/* Looks name up as a defined function; false when the module has no such symbol.  The
 * first look-up in a module indexes its symbol tables (kept until the release below). */
bool elf_find_function(const struct loaded_module *module, const char *name,
                       struct function_bounds *out);
/* The end of a batch of look-ups: unmaps the files and indexes elf_find_function made. */
void elf_symbol_indexes_release(void);
/* The function starting exactly at address, bounded by .eh_frame_hdr; false if no FDE
 * starts there. */
bool elf_function_at(const struct loaded_module *module, uintptr_t address,
                     struct function_bounds *out);

/* Does a module's file name match what the user wrote (exclude=, MODULE:)?  The whole name,
 * or the name up to a '.': "libc.so" matches "libc.so.6", "libxml2" "libxml2.so.2". */
bool elf_file_name_matches(const char *file_name, const char *pattern);

/* Calls visit for every loaded module; stops when visit returns false. */
void elf_for_each_module(bool (*visit)(const struct loaded_module *module, void *data), void *data);

#endif /* ARENASHIM_PRELOAD_LIB_ELF_H */
