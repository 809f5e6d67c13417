/*
 * symbolize.h — naming code addresses: module, offset, symbol (.dynsym and .symtab).
 */
#ifndef ARENASHIM_PRELOAD_SYMBOLIZE_H
#define ARENASHIM_PRELOAD_SYMBOLIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct symbolized {
    const char *module;   /* base name, "" if unknown */
    uintptr_t module_offset;
    char symbol[160];     /* "" if unknown */
    uintptr_t symbol_offset;
};

/* Async-signal-safe in practice: dladdr, open/mmap of the module file, no malloc. */
bool symbolize(uintptr_t pc, struct symbolized *out);
/* The module loaded at base was unloaded: its cached symbols go (another may load there). */
void symbolize_forget_module(uintptr_t base);
void symbolize_fork_child(void);

#endif
