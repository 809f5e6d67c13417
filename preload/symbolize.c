/*
 * symbolize.c — the frames of reports: "0xPC module+0xOFF (symbol+0xOFF)".
 *
 * Layer: preload.  dladdr names the module and, from .dynsym only, exported symbols; static
 * functions (most of a program) are named from the file's .symtab.  Each module's file is
 * mapped read-only once and kept (a small cache), so a backtrace of 32 frames costs a few
 * scans of symbol tables.  No malloc: this runs in the SIGSEGV handler.
 */
#include "symbolize.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define CACHED_MODULES 32

struct module_symbols {
    uintptr_t base;
    const uint8_t *file;
    size_t size;
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
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        struct stat st;
        if (fstat(fd, &st) == 0 && st.st_size > (off_t)sizeof(Elf64_Ehdr)) {
            void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
            if (p != MAP_FAILED) {
                const Elf64_Ehdr *header = p;
                if (memcmp(header->e_ident, ELFMAG, SELFMAG) == 0 &&
                    header->e_shoff + (size_t)header->e_shnum * sizeof(Elf64_Shdr) <= (size_t)st.st_size) {
                    entry->file = p;
                    entry->size = (size_t)st.st_size;
                    entry->loaded = true;
                } else {
                    munmap(p, (size_t)st.st_size);
                }
            }
        }
        close(fd);
    }
    cached++;
    return entry;
}

/* The function symbol containing offset, from .symtab or .dynsym. */
static bool lookup(const struct module_symbols *module, uintptr_t offset, struct symbolized *out)
{
    if (!module || !module->loaded)
        return false;
    const Elf64_Ehdr *header = (const Elf64_Ehdr *)module->file;
    const Elf64_Shdr *sections = (const Elf64_Shdr *)(module->file + header->e_shoff);
    const Elf64_Sym *best = NULL;
    const char *best_names = NULL;
    for (unsigned i = 0; i < header->e_shnum; i++) {
        const Elf64_Shdr *symbols = &sections[i];
        if ((symbols->sh_type != SHT_SYMTAB && symbols->sh_type != SHT_DYNSYM) ||
            symbols->sh_link >= header->e_shnum || symbols->sh_entsize != sizeof(Elf64_Sym) ||
            symbols->sh_offset + symbols->sh_size > module->size)
            continue;
        const Elf64_Shdr *strings = &sections[symbols->sh_link];
        if (strings->sh_offset + strings->sh_size > module->size)
            continue;
        const Elf64_Sym *table = (const Elf64_Sym *)(module->file + symbols->sh_offset);
        size_t count = symbols->sh_size / sizeof(Elf64_Sym);
        for (size_t k = 0; k < count; k++) {
            const Elf64_Sym *sym = &table[k];
            if (ELF64_ST_TYPE(sym->st_info) != STT_FUNC || sym->st_shndx == SHN_UNDEF ||
                sym->st_value > offset || sym->st_name >= strings->sh_size)
                continue;
            bool inside = sym->st_size ? offset < sym->st_value + sym->st_size : true;
            if (!inside)
                continue;
            if (best == NULL || sym->st_value > best->st_value ||
                (sym->st_value == best->st_value && best->st_size == 0 && sym->st_size)) {
                best = sym;
                best_names = (const char *)(module->file + strings->sh_offset);
            }
        }
    }
    if (best == NULL)
        return false;
    const char *name = best_names + best->st_name;
    size_t len = strlen(name);
    if (len >= sizeof out->symbol)
        len = sizeof out->symbol - 1;
    memcpy(out->symbol, name, len);
    out->symbol[len] = '\0';
    out->symbol_offset = offset - best->st_value;
    return true;
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
    /* Executables are linked at their load address when not position independent. */
    const Elf64_Ehdr *header = module && module->loaded ? (const Elf64_Ehdr *)module->file : NULL;
    uintptr_t offset = header && header->e_type == ET_EXEC ? pc : pc - base;
    bool found = lookup(module, offset, out);
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
