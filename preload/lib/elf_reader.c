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
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* DWARF pointer encodings used by .eh_frame_hdr. */
#define DW_EH_PE_udata4 0x03
#define DW_EH_PE_sdata4 0x0b
#define DW_EH_PE_datarel 0x30

bool elf_file_map(const char *path, struct elf_file *file)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(Elf64_Ehdr)) {
        close(fd);
        return false;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
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

/* Looks name up in one symbol table.  In .dynsym, a name may have several versions
 * (memcpy@GLIBC_2.2.5 and memcpy@@GLIBC_2.14): the default one, which programs link against
 * today, wins over hidden older ones (.gnu.version, bit 15). */
static bool search_table(const struct elf_file *file, const Elf64_Shdr *symbols,
                         const Elf64_Shdr *strings, const uint16_t *versions, const char *name,
                         Elf64_Sym *found)
{
    if (symbols->sh_offset + symbols->sh_size > file->size ||
        strings->sh_offset + strings->sh_size > file->size || symbols->sh_entsize != sizeof(Elf64_Sym))
        return false;
    const Elf64_Sym *table = (const Elf64_Sym *)(file->data + symbols->sh_offset);
    const char *names = (const char *)(file->data + strings->sh_offset);
    size_t count = symbols->sh_size / sizeof(Elf64_Sym);
    bool have = false;
    for (size_t i = 0; i < count; i++) {
        const Elf64_Sym *sym = &table[i];
        unsigned type = ELF64_ST_TYPE(sym->st_info);
        if ((type != STT_FUNC && type != STT_GNU_IFUNC) || sym->st_shndx == SHN_UNDEF ||
            sym->st_name >= strings->sh_size || strcmp(names + sym->st_name, name) != 0)
            continue;
        bool hidden = versions && (versions[i] & 0x8000);
        if (!have || !hidden) {
            *found = *sym;
            have = true;
        }
        if (!hidden)
            return true;
    }
    return have;
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

bool elf_find_function(const struct loaded_module *module, const char *name,
                       struct function_bounds *out)
{
    struct elf_file file;
    if (!elf_file_map(module->path, &file))
        return false;
    const Elf64_Ehdr *header = (const Elf64_Ehdr *)file.data;
    const Elf64_Shdr *sections = (const Elf64_Shdr *)(file.data + header->e_shoff);
    Elf64_Sym sym;
    bool found = false;
    /* .dynsym first (what the dynamic linker sees), then .symtab (static functions). */
    for (unsigned pass = 0; pass < 2 && !found; pass++) {
        unsigned wanted = pass == 0 ? SHT_DYNSYM : SHT_SYMTAB;
        for (unsigned i = 0; i < header->e_shnum && !found; i++) {
            if (sections[i].sh_type != wanted || sections[i].sh_link >= header->e_shnum)
                continue;
            const uint16_t *versions =
                wanted == SHT_DYNSYM ? versions_of(&file, sections, header->e_shnum, &sections[i]) : NULL;
            found = search_table(&file, &sections[i], &sections[sections[i].sh_link], versions, name, &sym);
        }
    }
    elf_file_unmap(&file);
    if (!found)
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
