/*
 * elf_reader.c — symbol and function-bound look-ups in ELF files (see elf_reader.h).
 *
 * Layer: preload, lib.  Reads the section headers of the module's file (mapped read-only) to find
 * .dynsym/.dynstr and .symtab/.strtab; a match must be a defined STT_FUNC (or IFUNC, which is
 * reported so it can be refused).  .eh_frame_hdr's sorted table of FDE start addresses gives
 * function starts; the next start bounds the function.
 */
#include "elf_reader.h"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sys.h"

/* DWARF pointer encodings used by .eh_frame_hdr. */
#define DW_EH_PE_udata4 0x03
#define DW_EH_PE_sdata4 0x0b
#define DW_EH_PE_datarel 0x30

bool elf_file_map(const char *path, struct elf_file *file)
{
    int fd = sys_open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(Elf64_Ehdr)) {
        sys_close(fd);
        return false;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    sys_close(fd);
    if (p == MAP_FAILED)
        return false;
    file->data = p;
    file->size = (size_t)st.st_size;
    const Elf64_Ehdr *header = p;
    if (memcmp(header->e_ident, ELFMAG, SELFMAG) != 0 || header->e_ident[EI_CLASS] != ELFCLASS64 ||
        header->e_shoff == 0 || header->e_shoff + (size_t)header->e_shnum * sizeof(Elf64_Shdr) > file->size) {
        munmap(p, file->size);
        return false;
    }
    return true;
}

void elf_file_unmap(struct elf_file *file)
{
    munmap((void *)file->data, file->size);
    file->data = NULL;
    file->size = 0;
}

bool elf_file_is_fixed_address(const struct elf_file *file)
{
    return ((const Elf64_Ehdr *)file->data)->e_type == ET_EXEC;
}

bool elf_file_function_containing(const struct elf_file *file, uintptr_t offset, char *name,
                                  size_t name_len, uintptr_t *from_start)
{
    const Elf64_Ehdr *header = (const Elf64_Ehdr *)file->data;
    const Elf64_Shdr *sections = (const Elf64_Shdr *)(file->data + header->e_shoff);
    const Elf64_Sym *best = NULL;
    const char *best_names = NULL;
    for (unsigned i = 0; i < header->e_shnum; i++) {
        const Elf64_Shdr *symbols = &sections[i];
        if ((symbols->sh_type != SHT_SYMTAB && symbols->sh_type != SHT_DYNSYM) ||
            symbols->sh_link >= header->e_shnum || symbols->sh_entsize != sizeof(Elf64_Sym) ||
            symbols->sh_offset + symbols->sh_size > file->size)
            continue;
        const Elf64_Shdr *strings = &sections[symbols->sh_link];
        if (strings->sh_offset + strings->sh_size > file->size)
            continue;
        const Elf64_Sym *table = (const Elf64_Sym *)(file->data + symbols->sh_offset);
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
                best_names = (const char *)(file->data + strings->sh_offset);
            }
        }
    }
    if (best == NULL)
        return false;
    const char *found = best_names + best->st_name;
    size_t len = strlen(found);
    if (len >= name_len)
        len = name_len - 1;
    memcpy(name, found, len);
    name[len] = '\0';
    *from_start = offset - best->st_value;
    return true;
}

static const uint16_t *versions_of(const struct elf_file *file, const Elf64_Shdr *sections,
                                   unsigned count, const Elf64_Shdr *symbols)
{
    for (unsigned i = 0; i < count; i++)
        if (sections[i].sh_type == SHT_GNU_versym && sections[i].sh_link < count &&
            &sections[sections[i].sh_link] == symbols &&
            sections[i].sh_offset + sections[i].sh_size <= file->size &&
            sections[i].sh_size / 2 == symbols->sh_size / sizeof(Elf64_Sym))
            return (const uint16_t *)(file->data + sections[i].sh_offset);
    return NULL;
}

/* --- symbol indexes ----------------------------------------------------------------------
 *
 * Marking a library's whole API looks up thousands of names in one module.  The first look-up
 * in a module maps its file once and sorts each symbol table's functions by the hash of their
 * names; a look-up is then a binary search and a few string compares instead of a pass over
 * every symbol.  Indexes live until elf_symbol_indexes_release (the end of a batch of
 * look-ups: start-up, one dlopen), so no file stays mapped while the program runs. */

#define SYMBOL_INDEXES_MAX 32

struct symbol_table_index {
    const Elf64_Sym *symbols;
    const char *names;
    size_t names_size;
    const uint16_t *versions; /* .gnu.version for .dynsym, or NULL */
    uint64_t *order;          /* (name hash << 32 | symbol index), sorted */
    size_t count;
};

struct symbol_index {
    uintptr_t load_base;
    char path[512];
    struct elf_file file;
    bool usable;
    struct symbol_table_index tables[2]; /* .dynsym, then .symtab */
    void *order_memory;
    size_t order_bytes;
};

static struct symbol_index symbol_indexes[SYMBOL_INDEXES_MAX];
static unsigned symbol_index_count;

static uint32_t name_hash(const char *name)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *c = (const unsigned char *)name; *c; c++)
        h = (h ^ *c) * 16777619u;
    return h;
}

static int compare_order(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static bool is_defined_function(const Elf64_Sym *sym)
{
    unsigned type = ELF64_ST_TYPE(sym->st_info);
    return (type == STT_FUNC || type == STT_GNU_IFUNC) && sym->st_shndx != SHN_UNDEF;
}

static void index_table(struct symbol_index *index, unsigned which, const Elf64_Shdr *sections,
                        unsigned section_count, unsigned wanted, uint64_t **next_order)
{
    struct symbol_table_index *table = &index->tables[which];
    const struct elf_file *file = &index->file;
    for (unsigned i = 0; i < section_count; i++) {
        const Elf64_Shdr *symbols = &sections[i];
        if (symbols->sh_type != wanted || symbols->sh_link >= section_count)
            continue;
        const Elf64_Shdr *strings = &sections[symbols->sh_link];
        if (symbols->sh_offset + symbols->sh_size > file->size ||
            strings->sh_offset + strings->sh_size > file->size || symbols->sh_entsize != sizeof(Elf64_Sym))
            continue;
        table->symbols = (const Elf64_Sym *)(file->data + symbols->sh_offset);
        table->names = (const char *)(file->data + strings->sh_offset);
        table->names_size = strings->sh_size;
        table->versions = wanted == SHT_DYNSYM ? versions_of(file, sections, section_count, symbols) : NULL;
        table->order = *next_order;
        size_t count = symbols->sh_size / sizeof(Elf64_Sym);
        for (size_t k = 0; k < count && k <= UINT32_MAX; k++) {
            const Elf64_Sym *sym = &table->symbols[k];
            if (!is_defined_function(sym) || sym->st_name >= table->names_size ||
                memchr(table->names + sym->st_name, '\0', table->names_size - sym->st_name) == NULL)
                continue;
            table->order[table->count++] = (uint64_t)name_hash(table->names + sym->st_name) << 32 | k;
        }
        qsort(table->order, table->count, sizeof table->order[0], compare_order);
        *next_order += table->count;
        return; /* one table of each kind */
    }
}

static struct symbol_index *symbol_index_of(const struct loaded_module *module)
{
    for (unsigned i = 0; i < symbol_index_count; i++)
        if (symbol_indexes[i].load_base == module->load_base &&
            strcmp(symbol_indexes[i].path, module->path) == 0)
            return symbol_indexes[i].usable ? &symbol_indexes[i] : NULL;
    if (symbol_index_count == SYMBOL_INDEXES_MAX)
        elf_symbol_indexes_release();
    struct symbol_index *index = &symbol_indexes[symbol_index_count++];
    memset(index, 0, sizeof *index);
    index->load_base = module->load_base;
    memcpy(index->path, module->path, sizeof index->path);
    if (!elf_file_map(module->path, &index->file))
        return NULL;
    const Elf64_Ehdr *header = (const Elf64_Ehdr *)index->file.data;
    const Elf64_Shdr *sections = (const Elf64_Shdr *)(index->file.data + header->e_shoff);
    /* Room for every symbol of both tables: an upper bound on the functions indexed. */
    size_t symbols = 0;
    for (unsigned i = 0; i < header->e_shnum; i++)
        if (sections[i].sh_type == SHT_DYNSYM || sections[i].sh_type == SHT_SYMTAB)
            symbols += sections[i].sh_size / sizeof(Elf64_Sym);
    index->order_bytes = (symbols + 1) * sizeof(uint64_t);
    index->order_memory = mmap(NULL, index->order_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (index->order_memory == MAP_FAILED) {
        index->order_memory = NULL;
        return NULL;
    }
    uint64_t *next_order = index->order_memory;
    index_table(index, 0, sections, header->e_shnum, SHT_DYNSYM, &next_order);
    index_table(index, 1, sections, header->e_shnum, SHT_SYMTAB, &next_order);
    index->usable = true;
    return index;
}

void elf_symbol_indexes_release(void)
{
    for (unsigned i = 0; i < symbol_index_count; i++) {
        struct symbol_index *index = &symbol_indexes[i];
        if (index->order_memory)
            munmap(index->order_memory, index->order_bytes);
        if (index->file.data)
            elf_file_unmap(&index->file);
    }
    symbol_index_count = 0;
}

/* In .dynsym a name may have several versions (memcpy@GLIBC_2.2.5 and memcpy@@GLIBC_2.14):
 * the default one, which programs link against today, wins over hidden older ones
 * (.gnu.version, bit 15); among equals, the first in the table. */
static bool search_index(const struct symbol_table_index *table, const char *name, Elf64_Sym *found)
{
    uint64_t key = (uint64_t)name_hash(name) << 32;
    size_t low = 0, high = table->count;
    while (low < high) {
        size_t mid = (low + high) / 2;
        if (table->order[mid] < key)
            low = mid + 1;
        else
            high = mid;
    }
    bool have = false;
    for (size_t i = low; i < table->count && (table->order[i] >> 32) == key >> 32; i++) {
        uint32_t k = (uint32_t)table->order[i];
        const Elf64_Sym *sym = &table->symbols[k];
        if (strcmp(table->names + sym->st_name, name) != 0)
            continue;
        bool hidden = table->versions && (table->versions[k] & 0x8000);
        if (!have || !hidden) {
            *found = *sym;
            have = true;
        }
        if (!hidden)
            return true;
    }
    return have;
}

bool elf_find_function(const struct loaded_module *module, const char *name,
                       struct function_bounds *out)
{
    const struct symbol_index *index = symbol_index_of(module);
    if (index == NULL)
        return false;
    Elf64_Sym sym;
    /* .dynsym first (what the dynamic linker sees), then .symtab (static functions). */
    if (!search_index(&index->tables[0], name, &sym) && !search_index(&index->tables[1], name, &sym))
        return false;
    out->start = module->load_base + sym.st_value;
    out->end = out->start + sym.st_size;
    out->is_ifunc = ELF64_ST_TYPE(sym.st_info) == STT_GNU_IFUNC;
    if (sym.st_size == 0) {
        struct function_bounds bounds;
        if (elf_function_at(module, out->start, &bounds))
            out->end = bounds.end;
    }
    return true;
}

/* .eh_frame_hdr: version, eh_frame_ptr_enc, fde_count_enc, table_enc, then the pointer, the
 * count and a table of (initial location, FDE address) pairs sorted by location.  GCC and
 * clang always emit the table as datarel sdata4. */
bool elf_function_at(const struct loaded_module *module, uintptr_t address,
                     struct function_bounds *out)
{
    const uint8_t *hdr = module->eh_frame_hdr;
    if (hdr == NULL || hdr[0] != 1 || hdr[3] != (DW_EH_PE_datarel | DW_EH_PE_sdata4))
        return false;
    const uint8_t *p = hdr + 4;
    /* eh_frame_ptr: skip it according to its encoding (pcrel sdata4 in practice). */
    if ((hdr[1] & 0x0f) != DW_EH_PE_sdata4 && (hdr[1] & 0x0f) != DW_EH_PE_udata4)
        return false;
    p += 4;
    uint32_t count;
    if ((hdr[2] & 0x0f) == DW_EH_PE_udata4 || (hdr[2] & 0x0f) == DW_EH_PE_sdata4)
        memcpy(&count, p, 4);
    else
        return false;
    p += 4;
    const int32_t *table = (const int32_t *)p;
    size_t low = 0, high = count;
    while (low < high) { /* first entry whose location is > address */
        size_t mid = (low + high) / 2;
        uintptr_t location = (uintptr_t)hdr + (intptr_t)table[2 * mid];
        if (location <= address)
            low = mid + 1;
        else
            high = mid;
    }
    if (low == 0)
        return false;
    uintptr_t start = (uintptr_t)hdr + (intptr_t)table[2 * (low - 1)];
    if (start != address)
        return false;
    out->start = start;
    out->end = low < count ? (uintptr_t)hdr + (intptr_t)table[2 * low] : module->text_end;
    if (out->end > module->text_end && module->text_end > start)
        out->end = module->text_end;
    out->is_ifunc = false;
    return true;
}

bool elf_file_name_matches(const char *file_name, const char *pattern)
{
    size_t len = strlen(pattern);
    return strncmp(file_name, pattern, len) == 0 && (file_name[len] == '\0' || file_name[len] == '.');
}

struct iterate_context {
    bool (*visit)(const struct loaded_module *module, void *data);
    void *data;
};

static int visit_phdr(struct dl_phdr_info *info, size_t size, void *opaque)
{
    (void)size;
    struct iterate_context *context = opaque;
    struct loaded_module module;
    memset(&module, 0, sizeof module);
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    if (name[0] == '\0') {
        ssize_t n = readlink("/proc/self/exe", module.path, sizeof module.path - 1);
        if (n <= 0)
            return 0;
        module.path[n] = '\0';
        module.is_executable = true;
    } else {
        size_t len = strlen(name);
        if (len >= sizeof module.path || strncmp(name, "linux-vdso", 10) == 0)
            return 0;
        memcpy(module.path, name, len + 1);
    }
    const char *slash = strrchr(module.path, '/');
    module.file_name = slash ? slash + 1 : module.path;
    module.load_base = info->dlpi_addr;
    for (unsigned i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *phdr = &info->dlpi_phdr[i];
        if (phdr->p_type == PT_LOAD && (phdr->p_flags & PF_X)) {
            module.text_start = info->dlpi_addr + phdr->p_vaddr;
            module.text_end = module.text_start + phdr->p_memsz;
        } else if (phdr->p_type == PT_GNU_EH_FRAME) {
            module.eh_frame_hdr = (const void *)(info->dlpi_addr + phdr->p_vaddr);
        }
    }
    if (module.text_end == 0)
        return 0;
    return context->visit(&module, context->data) ? 0 : 1;
}

void elf_for_each_module(bool (*visit)(const struct loaded_module *module, void *data), void *data)
{
    struct iterate_context context = { visit, data };
    dl_iterate_phdr(visit_phdr, &context);
}
