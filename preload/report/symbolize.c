/*
 * symbolize.c — the frames of reports: "0xPC module+0xOFF (symbol+0xOFF)".
 *
 * Layer: preload, report.  dladdr names the module and, from .dynsym only, exported symbols; static
 * functions (most of a program) are named from the file's .symtab.  Each module's file is
 * mapped read-only once and kept (a small cache), so a backtrace of 32 frames costs a few
 * scans of symbol tables.  No malloc: this runs in the SIGSEGV handler.
 */
#include "symbolize.h"

#include <dlfcn.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "elf_reader.h"

#define CACHED_MODULES 32

struct module_symbols {
    uintptr_t base;
    struct elf_file file;
    bool loaded;
};

static struct module_symbols cache[CACHED_MODULES];
static unsigned cached;
static spin_lock cache_lock = SPIN_LOCK_INIT;

static const struct module_symbols *symbols_of(uintptr_t base, const char *path)
{
    for (unsigned i = 0; i < cached; i++)
        if (cache[i].base == base)
            return &cache[i];
    if (cached == CACHED_MODULES)
        return NULL;
    struct module_symbols *entry = &cache[cached];
    memset(entry, 0, sizeof *entry);
    entry->base = base;
    char resolved[512];
    if (path == NULL || path[0] == '\0') {
        ssize_t n = readlink("/proc/self/exe", resolved, sizeof resolved - 1);
        if (n <= 0)
            return NULL;
        resolved[n] = '\0';
        path = resolved;
    }
    entry->loaded = elf_file_map(path, &entry->file);
    cached++;
    return entry;
}

void symbolize_forget_module(uintptr_t base)
{
    spin_lock_acquire(&cache_lock);
    for (unsigned i = 0; i < cached; i++) {
        if (cache[i].base != base)
            continue;
        if (cache[i].loaded)
            elf_file_unmap(&cache[i].file);
        cache[i] = cache[--cached];
        break;
    }
    spin_lock_release(&cache_lock);
}

void symbolize_fork_child(void)
{
    spin_lock_reset(&cache_lock);
}

bool symbolize(uintptr_t pc, struct symbolized *out)
{
    Dl_info info;
    memset(out, 0, sizeof *out);
    out->module = "";
    if (pc == 0 || !dladdr((void *)pc, &info) || info.dli_fname == NULL)
        return false;
    const char *slash = strrchr(info.dli_fname, '/');
    out->module = slash ? slash + 1 : info.dli_fname;
    uintptr_t base = (uintptr_t)info.dli_fbase;
    out->module_offset = pc - base;
    spin_lock_acquire(&cache_lock);
    const struct module_symbols *module = symbols_of(base, info.dli_fname);
    bool found = false;
    if (module && module->loaded) {
        /* Executables are linked at their load address when not position independent. */
        uintptr_t offset = elf_file_is_fixed_address(&module->file) ? pc : pc - base;
        found = elf_file_function_containing(&module->file, offset, out->symbol, sizeof out->symbol,
                                             &out->symbol_offset);
    }
    spin_lock_release(&cache_lock);
    if (!found && info.dli_sname) {
        size_t len = strlen(info.dli_sname);
        if (len >= sizeof out->symbol)
            len = sizeof out->symbol - 1;
        memcpy(out->symbol, info.dli_sname, len);
        out->symbol[len] = '\0';
        out->symbol_offset = pc - (uintptr_t)info.dli_saddr;
        found = true;
    }
    return found;
}
