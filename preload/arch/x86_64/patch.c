/*
 * patch.c — patching a function's entry on x86-64.
 *
 * Layer: preload, arch (x86-64).  For a function F:
 *
 *   1. Decode (capstone) from F's entry, after an endbr64 which stays in place, until at
 *      least 5 bytes are covered: these are displaced by "jmp rel32" to the trampoline.
 *      Refused: a ret, int3 or the end of F inside them, a jmp or call before their 5th byte
 *      (too short); loop/jrcxz (rel8 only).
 *   2. Refuse if any direct branch in F's module targets the inside of the displaced bytes
 *      (a loop back to F's second instruction, code shared with another function); the
 *      module's text is decoded once and its branch targets kept sorted.
 *   3. Build the trampoline within ±2 GiB of F: "push index; jmp arenashim_hook_entry",
 *      then the displaced instructions relocated (RIP-relative displacements rewritten;
 *      relative jmp/jcc/call turned into absolute ones; a call, direct or indirect, pushes
 *      F's own next address), then "jmp F+displaced".
 *   4. Patch F while other threads may run it: int3 on the first byte, then the rest, then
 *      the jmp opcode, serialising the other cores between steps; a thread that hits the
 *      int3 meanwhile is sent to the trampoline by the SIGTRAP handler.
 *
 * Indirect jumps inside F (switch tables) are accepted: compilers never aim them at the
 * first instructions of a function, which are its prologue.
 */
#include "arch.h"
#include "core.h"
#include "proc.h"
#include "sys.h"

#include <capstone/capstone.h>
#include <cpuid.h>
#include <dlfcn.h>
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

/* capstone is loaded when the first marker needs it, not by every preloaded process: its
 * relocations alone cost about 3 MiB of RSS at start-up.  The calls go through this table. */
static struct {
    cs_err (*open)(cs_arch, cs_mode, csh *);
    cs_err (*option)(csh, cs_opt_type, size_t);
    bool (*disasm_iter)(csh, const uint8_t **, size_t *, uint64_t *, cs_insn *);
    cs_insn *(*malloc)(csh);
    void (*free)(cs_insn *, size_t);
    bool (*insn_group)(csh, const cs_insn *, unsigned int);
} capstone_api;

static bool capstone_load(void)
{
    void *library = dlopen("libcapstone.so.4", RTLD_NOW | RTLD_LOCAL);
    if (library == NULL)
        library = dlopen("libcapstone.so", RTLD_NOW | RTLD_LOCAL);
    if (library == NULL)
        return false;
    *(void **)&capstone_api.open = dlsym(library, "cs_open");
    *(void **)&capstone_api.option = dlsym(library, "cs_option");
    *(void **)&capstone_api.disasm_iter = dlsym(library, "cs_disasm_iter");
    *(void **)&capstone_api.malloc = dlsym(library, "cs_malloc");
    *(void **)&capstone_api.free = dlsym(library, "cs_free");
    *(void **)&capstone_api.insn_group = dlsym(library, "cs_insn_group");
    return capstone_api.open && capstone_api.option && capstone_api.disasm_iter &&
           capstone_api.malloc && capstone_api.free && capstone_api.insn_group;
}

#define cs_open capstone_api.open
#define cs_option capstone_api.option
#define cs_disasm_iter capstone_api.disasm_iter
#define cs_malloc capstone_api.malloc
#define cs_free capstone_api.free
#define cs_insn_group capstone_api.insn_group

#define PATCH_BYTES 5
#define TRAMPOLINE_BYTES 160
#define TRAMPOLINE_AREA_BYTES ((size_t)64 << 10)
#define REACH ((uintptr_t)0x7ff00000) /* a little under 2 GiB */
#define MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE (1 << 5)
#define MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE (1 << 6)

uint64_t arenashim_xsave_size;

static csh capstone;
static bool sync_core_available;

struct trampoline_area {
    uintptr_t start, used, size;
};
static struct trampoline_area areas[64];
static unsigned area_count;

/* Direct-branch targets of one module's text, sorted. */
struct branch_targets {
    uintptr_t text_start, text_end;
    uintptr_t *targets;
    size_t count, mapped_bytes;
};
static struct branch_targets target_sets[64];
static unsigned target_set_count;

/* Patch sites being written, for the SIGTRAP handler. */
static volatile uintptr_t patching_site, patching_entry;
static struct sigaction previous_trap_action;

static bool refuse(char *why, size_t len, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(why, len, format, args);
    va_end(args);
    return false;
}

/* capstone allocates: give it jemalloc directly, never a region. */
static void *capstone_malloc(size_t size) { return mallocx(size ? size : 1, 0); }
static void *capstone_calloc(size_t n, size_t size)
{
    size_t total = n * size;
    return mallocx(total ? total : 1, MALLOCX_ZERO);
}
static void *capstone_realloc(void *p, size_t size)
{
    if (p == NULL)
        return capstone_malloc(size);
    return rallocx(p, size ? size : 1, 0);
}
static void capstone_free(void *p)
{
    if (p)
        dallocx(p, 0);
}

static void trap_handler(int signal, siginfo_t *info, void *context)
{
    ucontext_t *uc = context;
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    if (patching_site && pc == patching_site + 1) {
        uc->uc_mcontext.gregs[REG_RIP] = (greg_t)patching_entry;
        return;
    }
    /* Not ours: hand it to whoever had SIGTRAP before, or take the default action. */
    if (previous_trap_action.sa_flags & SA_SIGINFO) {
        previous_trap_action.sa_sigaction(signal, info, context);
    } else if (previous_trap_action.sa_handler != SIG_DFL && previous_trap_action.sa_handler != SIG_IGN) {
        previous_trap_action.sa_handler(signal);
    } else {
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_handler = SIG_DFL;
        sys_sigaction(SIGTRAP, &action, NULL);
        raise(SIGTRAP);
    }
}

bool hook_arch_init(char *why, size_t why_len)
{
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & bit_XSAVE) || !(ecx & bit_OSXSAVE))
        return refuse(why, why_len, "this CPU or kernel lacks XSAVE, which the hooks need to "
                      "keep every register intact");
    __cpuid_count(0xd, 0, eax, ebx, ecx, edx);
    arenashim_xsave_size = (uint64_t)ebx + 64;

    /* A hardware shadow stack (CET) would reject the hijacked return addresses. */
    unsigned long features = 0;
#ifndef ARCH_SHSTK_STATUS
#define ARCH_SHSTK_STATUS 0x5005
#endif
    if (syscall(SYS_arch_prctl, ARCH_SHSTK_STATUS, &features) == 0 && (features & 1))
        return refuse(why, why_len, "a hardware shadow stack (CET) is enabled for this process; "
                      "function markers would crash it");

    if (!capstone_load())
        return refuse(why, why_len, "cannot load libcapstone.so.4, the disassembler the hooks need "
                      "(apt-get install libcapstone4)");
    cs_opt_mem memory = { capstone_malloc, capstone_calloc, capstone_realloc, capstone_free, vsnprintf };
    cs_option(0, CS_OPT_MEM, (size_t)&memory);
    if (cs_open(CS_ARCH_X86, CS_MODE_64, &capstone) != CS_ERR_OK)
        return refuse(why, why_len, "capstone could not start");
    cs_option(capstone, CS_OPT_DETAIL, CS_OPT_ON);

    if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0) == 0)
        sync_core_available = true;

    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = trap_handler;
    action.sa_flags = SA_SIGINFO | SA_RESTART | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    sys_sigaction(SIGTRAP, &action, &previous_trap_action);
    return true;
}

static void serialize_other_cores(void)
{
    if (sync_core_available)
        syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0);
}

/* --- branch targets ------------------------------------------------------------------ */

static int compare_addresses(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static bool is_relative_branch(const cs_insn *insn)
{
    const cs_x86 *x86 = &insn->detail->x86;
    return cs_insn_group(capstone, insn, CS_GRP_BRANCH_RELATIVE) && x86->op_count == 1 &&
           x86->operands[0].type == X86_OP_IMM;
}

/* Decodes [start, end) linearly and calls visit with the target of every direct branch;
 * visit returns false to stop.  Bytes capstone cannot decode (data, padding) are stepped over
 * one at a time. */
static void for_each_branch_target(uintptr_t start, uintptr_t end,
                                   bool (*visit)(uintptr_t target, void *data), void *data)
{
    cs_insn *insn = cs_malloc(capstone);
    const uint8_t *code = (const uint8_t *)start;
    size_t size = end - start;
    uint64_t address = start;
    while (size > 0) {
        if (!cs_disasm_iter(capstone, &code, &size, &address, insn)) {
            code++;
            size--;
            address++;
            continue;
        }
        if (is_relative_branch(insn) && !visit((uintptr_t)insn->detail->x86.operands[0].imm, data))
            break;
    }
    cs_free(insn, 1);
}

struct target_list {
    uintptr_t *targets;
    size_t count, capacity;
};

static bool collect_target(uintptr_t target, void *data)
{
    struct target_list *list = data;
    if (list->count == list->capacity) {
        /* Code addresses only: plain memory, not metadata (it is unmapped when it grows). */
        uintptr_t *bigger = mmap(NULL, 2 * list->capacity * sizeof(uintptr_t), PROT_READ | PROT_WRITE,
                                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (bigger == MAP_FAILED)
            return false;
        memcpy(bigger, list->targets, list->count * sizeof(uintptr_t));
        munmap(list->targets, list->capacity * sizeof(uintptr_t));
        list->targets = bigger;
        list->capacity *= 2;
    }
    list->targets[list->count++] = target;
    return true;
}

void hook_patch_forget_module(uintptr_t text_start)
{
    /* The set is dropped (its memory unmapped) and the last one moved into its place: another
     * library loaded at the same address must be decoded afresh. */
    for (unsigned i = 0; i < target_set_count; i++) {
        if (target_sets[i].text_start != text_start)
            continue;
        if (target_sets[i].targets && target_sets[i].mapped_bytes)
            munmap(target_sets[i].targets, target_sets[i].mapped_bytes);
        target_sets[i] = target_sets[--target_set_count];
        return;
    }
}

static const struct branch_targets *targets_of_module(uintptr_t text_start, uintptr_t text_end)
{
    for (unsigned i = 0; i < target_set_count; i++)
        if (target_sets[i].text_start == text_start)
            return &target_sets[i];
    if (target_set_count == 64)
        return NULL;
    struct target_list list = { NULL, 0, 1 << 16 };
    list.targets = mmap(NULL, list.capacity * sizeof(uintptr_t), PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (list.targets == MAP_FAILED)
        return NULL;
    for_each_branch_target(text_start, text_end, collect_target, &list);
    qsort(list.targets, list.count, sizeof(uintptr_t), compare_addresses);
    struct branch_targets *set = &target_sets[target_set_count];
    set->text_start = text_start;
    set->text_end = text_end;
    set->targets = list.targets;
    set->mapped_bytes = list.capacity * sizeof(uintptr_t);
    set->count = list.count;
    target_set_count++;
    return set;
}

/* Some direct branch targets (low, high) exclusive?  Returns the target or 0. */
static uintptr_t branch_into(const struct branch_targets *set, uintptr_t low, uintptr_t high)
{
    size_t a = 0, b = set->count;
    while (a < b) {
        size_t mid = (a + b) / 2;
        if (set->targets[mid] <= low)
            a = mid + 1;
        else
            b = mid;
    }
    return a < set->count && set->targets[a] < high ? set->targets[a] : 0;
}

/* --- trampolines --------------------------------------------------------------------- */

struct gap_search {
    uintptr_t near, best, best_distance, previous_end;
};

static void visit_gap(const struct mapping *mapping, void *data)
{
    struct gap_search *search = data;
    uintptr_t gap_start = search->previous_end, gap_end = mapping->start;
    search->previous_end = mapping->end;
    if (gap_end <= gap_start || gap_end - gap_start < TRAMPOLINE_AREA_BYTES + 2 * 65536)
        return;
    /* The end of the gap nearest to near, keeping a page of distance from neighbours. */
    uintptr_t candidate = gap_end <= search->near ? gap_end - 65536 - TRAMPOLINE_AREA_BYTES
                                                  : gap_start + 65536;
    candidate &= ~(uintptr_t)0xffff;
    uintptr_t distance = candidate > search->near ? candidate - search->near : search->near - candidate;
    if (distance < search->best_distance) {
        search->best = candidate;
        search->best_distance = distance;
    }
}

static uint8_t *trampoline_alloc(uintptr_t near, char *why, size_t why_len)
{
    for (unsigned i = 0; i < area_count; i++) {
        struct trampoline_area *area = &areas[i];
        uintptr_t end = area->start + area->size;
        uintptr_t distance = area->start > near ? end - near : near - area->start;
        if (distance < REACH && area->used + TRAMPOLINE_BYTES <= area->size) {
            uint8_t *p = (uint8_t *)(area->start + area->used);
            area->used += TRAMPOLINE_BYTES;
            return p;
        }
    }
    if (area_count == 64) {
        refuse(why, why_len, "too many trampoline areas");
        return NULL;
    }
    static char *maps_buffer;
    if (maps_buffer == NULL)
        maps_buffer = metadata_map((size_t)4 << 20);
    struct gap_search search = { near, 0, UINTPTR_MAX, 0x10000 };
    if (maps_buffer == NULL || !proc_maps_for_each(maps_buffer, (size_t)4 << 20, visit_gap, &search) ||
        search.best_distance >= REACH - TRAMPOLINE_AREA_BYTES) {
        refuse(why, why_len, "no free address space within 2 GiB of the function for a trampoline");
        return NULL;
    }
    void *p = mmap((void *)search.best, TRAMPOLINE_AREA_BYTES, PROT_READ | PROT_WRITE | PROT_EXEC,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == MAP_FAILED) {
        refuse(why, why_len, "cannot map a trampoline near the function (%s)", strerror(errno));
        return NULL;
    }
    metadata_register(p, TRAMPOLINE_AREA_BYTES);
    areas[area_count].start = (uintptr_t)p;
    areas[area_count].size = TRAMPOLINE_AREA_BYTES;
    areas[area_count].used = TRAMPOLINE_BYTES;
    area_count++;
    return p;
}

static uint8_t *emit_absolute_jump(uint8_t *out, uintptr_t target)
{
    /* jmp *0(%rip); .quad target */
    out[0] = 0xff;
    out[1] = 0x25;
    memset(out + 2, 0, 4);
    memcpy(out + 6, &target, 8);
    return out + 14;
}

/* Where the 32-bit displacement of a RIP-relative operand sits in the instruction.  capstone 4
 * leaves encoding.disp_offset at 0 for some SSE/AVX instructions; the displacement is then
 * found where it must be, just before any immediate, and checked against its value. */
static unsigned displacement_offset(const cs_insn *insn, int32_t disp)
{
    const cs_x86 *x86 = &insn->detail->x86;
    if (x86->encoding.disp_offset != 0 && x86->encoding.disp_size == 4)
        return x86->encoding.disp_offset;
    int offset = (int)insn->size - 4 - (int)x86->encoding.imm_size;
    int32_t found;
    if (offset > 0) {
        memcpy(&found, insn->bytes + offset, 4);
        if (found == disp)
            return (unsigned)offset;
    }
    return 0;
}

/* What a displaced call pushes: the function's own next address, so the callee returns into
 * the function, where unwinders and backtraces find its frame description (not into the
 * trampoline, which has none).  20 bytes. */
static uint8_t *emit_push_return_address(uint8_t *out, uintptr_t next)
{
    uint32_t low = (uint32_t)next, high = (uint32_t)(next >> 32);
    static const uint8_t lea_rsp[5] = { 0x48, 0x8d, 0x64, 0x24, 0xf8 }; /* lea -8(%rsp),%rsp */
    memcpy(out, lea_rsp, 5);
    out[5] = 0xc7; out[6] = 0x04; out[7] = 0x24;                    /* movl $low,(%rsp) */
    memcpy(out + 8, &low, 4);
    out[12] = 0xc7; out[13] = 0x44; out[14] = 0x24; out[15] = 0x04; /* movl $high,4(%rsp) */
    memcpy(out + 16, &high, 4);
    return out + 20;
}

/* A relative jmp, call or jcc, re-aimed from its new address: absolute jumps reach
 * anywhere.  NULL (with a reason) for the forms that have no long encoding. */
static uint8_t *relocate_branch(const cs_insn *insn, uint8_t *out, char *why, size_t why_len)
{
    uintptr_t target = (uintptr_t)insn->detail->x86.operands[0].imm;
    uintptr_t next = insn->address + insn->size;
    switch (insn->id) {
    case X86_INS_JMP:
        return emit_absolute_jump(out, target);
    case X86_INS_CALL:
        /* A call is the last displaced instruction (can_displace): push the original return
         * address and jump. */
        return emit_absolute_jump(emit_push_return_address(out, next), target);
    case X86_INS_JRCXZ: case X86_INS_JECXZ: case X86_INS_LOOP: case X86_INS_LOOPE:
    case X86_INS_LOOPNE:
        refuse(why, why_len, "'%s' in the first bytes has no long form to relocate", insn->mnemonic);
        return NULL;
    default: {
        /* jcc: the opcode's low nibble is the condition; invert it to skip the jump. */
        const uint8_t *b = insn->bytes;
        unsigned k = 0, condition;
        while (k < insn->size && (b[k] == 0xf2 || b[k] == 0xf3 || b[k] == 0x2e || b[k] == 0x3e))
            k++;
        if (b[k] >= 0x70 && b[k] <= 0x7f) {
            condition = b[k] & 0xf;
        } else if (b[k] == 0x0f && b[k + 1] >= 0x80 && b[k + 1] <= 0x8f) {
            condition = b[k + 1] & 0xf;
        } else {
            refuse(why, why_len, "cannot relocate branch '%s %s'", insn->mnemonic, insn->op_str);
            return NULL;
        }
        out[0] = (uint8_t)(0x70 | (condition ^ 1));
        out[1] = 14;
        return emit_absolute_jump(out + 2, target);
    }
    }
}

/* Any other instruction, copied to out (where it will run at address), with the displacement
 * of a RIP-relative operand rewritten for its new address; NULL when the target is out of
 * 32-bit reach from there. */
static uint8_t *relocate_copy(const cs_insn *insn, uint8_t *out, uintptr_t address, char *why,
                              size_t why_len)
{
    const cs_x86 *x86 = &insn->detail->x86;
    uintptr_t next = insn->address + insn->size;
    memcpy(out, insn->bytes, insn->size);
    for (unsigned i = 0; i < x86->op_count; i++) {
        const cs_x86_op *op = &x86->operands[i];
        if (op->type != X86_OP_MEM || op->mem.base != X86_REG_RIP)
            continue;
        unsigned disp_offset = displacement_offset(insn, (int32_t)op->mem.disp);
        if (disp_offset == 0) {
            refuse(why, why_len, "cannot relocate RIP-relative '%s %s'", insn->mnemonic, insn->op_str);
            return NULL;
        }
        uintptr_t target = next + (intptr_t)op->mem.disp;
        intptr_t displacement = (intptr_t)target - (intptr_t)(address + insn->size);
        if (displacement != (int32_t)displacement) {
            refuse(why, why_len, "RIP-relative target of '%s %s' is out of reach of the trampoline",
                   insn->mnemonic, insn->op_str);
            return NULL;
        }
        int32_t d32 = (int32_t)displacement;
        memcpy(out + disp_offset, &d32, 4);
    }
    return out + insn->size;
}

/* An indirect call (ff /2, through a register or memory), the last displaced instruction:
 * like a direct one, it pushes the function's own next address, then jumps (ff /4) through the
 * same operand, which a copy would read 8 bytes further when it is on the stack. */
static uint8_t *relocate_indirect_call(const cs_insn *insn, uint8_t *out, uintptr_t address, char *why,
                                       size_t why_len)
{
    const cs_x86_op *op = &insn->detail->x86.operands[0];
    const uint8_t *b = insn->bytes;
    unsigned k = 0;
    while (k < insn->size && (b[k] == 0x66 || b[k] == 0x67 || b[k] == 0xf2 || b[k] == 0xf3 || b[k] == 0x2e ||
                              b[k] == 0x3e || b[k] == 0x26 || b[k] == 0x36 || b[k] == 0x64 || b[k] == 0x65))
        k++;
    if (k < insn->size && (b[k] & 0xf0) == 0x40) /* REX */
        k++;
    if (k + 1 >= insn->size || b[k] != 0xff || ((b[k + 1] >> 3) & 7) != 2 || insn->detail->x86.op_count != 1 ||
        (op->type == X86_OP_REG && op->reg == X86_REG_RSP)) {
        refuse(why, why_len, "cannot relocate branch '%s %s'", insn->mnemonic, insn->op_str);
        return NULL;
    }
    cs_insn jump = *insn;
    uint8_t *modrm = &jump.bytes[k + 1];
    *modrm = (uint8_t)((*modrm & ~0x38) | (4 << 3));
    if (op->type == X86_OP_MEM && op->mem.base == X86_REG_RSP) {
        /* ModRM, SIB (a stack pointer base needs one), then the displacement, if any. */
        unsigned mod = *modrm >> 6, at = k + 3;
        int32_t disp32;
        if (mod == 0 && jump.size < sizeof jump.bytes) { /* (%rsp,...) -> 8(%rsp,...) */
            *modrm |= 0x40;
            memmove(&jump.bytes[at + 1], &jump.bytes[at], jump.size - at);
            jump.bytes[at] = 8;
            jump.size++;
        } else if (mod == 1 && (int8_t)b[at] <= INT8_MAX - 8) {
            jump.bytes[at] = (uint8_t)((int8_t)b[at] + 8);
        } else if (mod == 2 && (memcpy(&disp32, b + at, 4), disp32 <= INT32_MAX - 8)) {
            disp32 += 8;
            memcpy(&jump.bytes[at], &disp32, 4);
        } else {
            refuse(why, why_len, "cannot relocate branch '%s %s'", insn->mnemonic, insn->op_str);
            return NULL;
        }
    }
    out = emit_push_return_address(out, insn->address + insn->size);
    return relocate_copy(&jump, out, address + 20, why, why_len);
}

/* Copies one displaced instruction to out, where it will run at address, or refuses. */
static uint8_t *relocate(const cs_insn *insn, uint8_t *out, uintptr_t address, char *why, size_t why_len)
{
    if (is_relative_branch(insn))
        return relocate_branch(insn, out, why, why_len);
    if (insn->id == X86_INS_CALL)
        return relocate_indirect_call(insn, out, address, why, why_len);
    return relocate_copy(insn, out, address, why, why_len);
}

static bool write_code(uintptr_t site, const uint8_t *bytes, size_t len, uintptr_t entry)
{
    uintptr_t page = site & ~(uintptr_t)4095;
    size_t span = align_up(site + len, 4096) - page;
    if (mprotect((void *)page, span, PROT_READ | PROT_WRITE | PROT_EXEC) != 0)
        return false;
    volatile uint8_t *code = (volatile uint8_t *)site;
    patching_entry = entry;
    patching_site = site;
    code[0] = 0xcc;
    serialize_other_cores();
    for (size_t i = 1; i < len; i++)
        code[i] = bytes[i];
    serialize_other_cores();
    code[0] = bytes[0];
    serialize_other_cores();
    mprotect((void *)page, span, PROT_READ | PROT_EXEC);
    return true;
}

struct landing_query {
    uintptr_t low, high, found;
};

static bool find_landing(uintptr_t target, void *data)
{
    struct landing_query *query = data;
    if (target > query->low && target < query->high) {
        query->found = target;
        return false;
    }
    return true;
}

/* A direct branch inside [start, end) that lands in (low, high); 0 if none. */
static uintptr_t branch_into_function(uintptr_t start, uintptr_t end, uintptr_t low, uintptr_t high)
{
    struct landing_query query = { low, high, 0 };
    for_each_branch_target(start, end, find_landing, &query);
    return query.found;
}

/* The instructions a patch displaces: at least PATCH_BYTES of them, from the patch site. */
struct displaced {
    cs_insn insns[PATCH_BYTES];
    cs_detail details[PATCH_BYTES];
    unsigned count;
    size_t covered;
};

enum displace_rule {
    DISPLACE_FUNCTION_ENTRY, /* straight-line code: no return, interrupt or early jump */
    DISPLACE_EMPTY_FUNCTION, /* a lone ret, then only padding no-ops */
};

/* Where the jump goes: after an endbr64, which stays in place.  0 (with a reason) when a
 * debugger's int3 already sits there. */
static uintptr_t patch_site(uintptr_t start, char *why, size_t why_len)
{
    static const uint8_t endbr64[4] = { 0xf3, 0x0f, 0x1e, 0xfa };
    uintptr_t site = memcmp((const void *)start, endbr64, 4) == 0 ? start + 4 : start;
    if (*(const uint8_t *)site == 0xcc) {
        refuse(why, why_len, "its entry holds a breakpoint (int3): a debugger or another tool owns it");
        return 0;
    }
    return site;
}

/* May insn, the index-th displaced one, move under rule?  false with a reason. */
static bool can_displace(const cs_insn *insn, enum displace_rule rule, unsigned index, size_t covered_after,
                         char *why, size_t why_len)
{
    if (rule == DISPLACE_EMPTY_FUNCTION) {
        if (index == 0 && insn->id != X86_INS_RET)
            return refuse(why, why_len, "it is not an empty function (a lone ret)");
        if (index > 0 && insn->id != X86_INS_NOP && insn->id != X86_INS_INT3)
            return refuse(why, why_len, "the %d bytes after its ret are not all padding", PATCH_BYTES - 1);
        return true;
    }
    if (cs_insn_group(capstone, insn, CS_GRP_RET) || cs_insn_group(capstone, insn, CS_GRP_INT) ||
        cs_insn_group(capstone, insn, CS_GRP_IRET))
        return refuse(why, why_len, "too short: '%s' within its first %d bytes", insn->mnemonic, PATCH_BYTES);
    /* An unconditional jmp ends the straight-line code: nothing after it is displaced. */
    if (insn->id == X86_INS_JMP && covered_after < PATCH_BYTES)
        return refuse(why, why_len, "too short: it jumps away within its first %d bytes", PATCH_BYTES);
    /* A call must be the last displaced instruction: the callee returns into the function,
     * after the displaced bytes (a direct call is 5 bytes long, an indirect one may be 2). */
    if (insn->id == X86_INS_CALL && covered_after < PATCH_BYTES)
        return refuse(why, why_len, "too short: it calls within its first %d bytes", PATCH_BYTES);
    return true;
}

/* Decodes from site (not past limit) until PATCH_BYTES are covered; false with a reason. */
static bool decode_displaced(uintptr_t site, uintptr_t limit, enum displace_rule rule,
                             struct displaced *out, char *why, size_t why_len)
{
    cs_insn *insn = cs_malloc(capstone);
    const uint8_t *code = (const uint8_t *)site;
    size_t size = limit > site ? limit - site : 0;
    uint64_t address = site;
    bool ok = true;
    out->count = 0;
    out->covered = 0;
    while (ok && out->covered < PATCH_BYTES) {
        if (size == 0 || !cs_disasm_iter(capstone, &code, &size, &address, insn)) {
            ok = refuse(why, why_len, "too short: only %zu bytes before its end (%d needed)", out->covered,
                        PATCH_BYTES);
            break;
        }
        ok = can_displace(insn, rule, out->count, out->covered + insn->size, why, why_len);
        out->insns[out->count] = *insn;
        out->details[out->count] = *insn->detail;
        out->insns[out->count].detail = &out->details[out->count];
        out->covered += insn->size;
        out->count++;
    }
    cs_free(insn, 1);
    return ok;
}

/* A trampoline starts with push $index (5 bytes) and an absolute jump (14): the displaced
 * instructions, where hooked calls resume, follow. */
#define TRAMPOLINE_RESUME_OFFSET 19
/* The longest relocated instruction: an indirect call (lea, two movl, then a jump of up to 16
 * bytes). */
#define RELOCATED_INSN_MAX 36

/* The resuming code of a trampoline: the displaced instructions of site relocated, then the
 * jump back to the function after them, written to out (room bytes) to run at address.
 * Returns the bytes written, 0 with a reason. */
static size_t relocate_displaced(uintptr_t site, const struct displaced *displaced, uint8_t *out,
                                 size_t room, uintptr_t address, char *why, size_t why_len)
{
    size_t used = 0;
    for (unsigned i = 0; i <= displaced->count; i++) {
        uint8_t code[RELOCATED_INSN_MAX], *end;
        if (i < displaced->count)
            end = relocate(&displaced->insns[i], code, address + used, why, why_len);
        else
            end = emit_absolute_jump(code, site + displaced->covered);
        if (end == NULL)
            return 0;
        size_t len = (size_t)(end - code);
        if (used + len > room) {
            refuse(why, why_len, "internal error: its relocated first instructions do not fit a "
                   "trampoline");
            return 0;
        }
        memcpy(out + used, code, len);
        used += len;
    }
    return used;
}

/* Builds the trampoline of hook index, patched at site with the displaced instructions;
 * stores where they resume to *resume_slot; writes the jump.  A hook index that had a
 * trampoline before (*resume_slot set: its function was in a library since unloaded) gets the
 * same one back when it is within reach: a library loaded and unloaded for ever costs no
 * trampoline space. */
static bool install_trampoline(uintptr_t site, const struct displaced *displaced, unsigned index,
                               uintptr_t *resume_slot, char *why, size_t why_len)
{
    uint8_t *trampoline = NULL;
    uintptr_t old_resume = __atomic_load_n(resume_slot, __ATOMIC_ACQUIRE);
    if (old_resume != 0) {
        uintptr_t old = old_resume - TRAMPOLINE_RESUME_OFFSET;
        uintptr_t distance = old > site ? old - site : site - old;
        if (distance < REACH - TRAMPOLINE_BYTES)
            trampoline = (uint8_t *)old;
    }
    if (trampoline == NULL)
        trampoline = trampoline_alloc(site, why, why_len);
    if (trampoline == NULL)
        return false;
    /* push $index; jmp *0(%rip) -> arenashim_hook_entry */
    uint8_t *out = trampoline;
    out[0] = 0x68;
    uint32_t index32 = index;
    memcpy(out + 1, &index32, 4);
    out = emit_absolute_jump(out + 5, (uintptr_t)arenashim_hook_entry);
    uint8_t *resume = out;
    if (resume != trampoline + TRAMPOLINE_RESUME_OFFSET)
        return refuse(why, why_len, "internal error: trampoline layout");
    if (relocate_displaced(site, displaced, resume, TRAMPOLINE_BYTES - TRAMPOLINE_RESUME_OFFSET,
                           (uintptr_t)resume, why, why_len) == 0)
        return false;
    size_t covered = displaced->covered;

    uint8_t patch[PATCH_BYTES + 15]; /* the last displaced instruction may be 15 bytes long */
    intptr_t rel = (intptr_t)trampoline - (intptr_t)(site + PATCH_BYTES);
    int32_t rel32 = (int32_t)rel;
    patch[0] = 0xe9;
    memcpy(patch + 1, &rel32, 4);
    for (size_t i = PATCH_BYTES; i < covered; i++)
        patch[i] = 0xcc; /* never executed: nothing jumps there (checked above) */
    __atomic_store_n(resume_slot, (uintptr_t)resume, __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (!write_code(site, patch, covered, (uintptr_t)trampoline))
        return refuse(why, why_len, "cannot make its code writable (%s)", strerror(errno));
    return true;
}

bool hook_patch_empty_function(uintptr_t start, uintptr_t limit, unsigned index, uintptr_t *resume,
                               char *why, size_t why_len)
{
    /* The ret, then padding up to at least the patch's end, which nothing jumps to: all of it
     * moves to the trampoline, where the ret runs after the hook. */
    uintptr_t site = patch_site(start, why, why_len);
    struct displaced displaced;
    if (site == 0)
        return false;
    if (limit < site + PATCH_BYTES)
        return refuse(why, why_len, "another function starts %lu bytes after it",
                      (unsigned long)(limit - site));
    if (!decode_displaced(site, limit, DISPLACE_EMPTY_FUNCTION, &displaced, why, why_len))
        return false;
    return install_trampoline(site, &displaced, index, resume, why, why_len);
}

/* Everything hook_patch checks before it writes: where the patch goes, what it displaces,
 * and that nothing jumps into the displaced bytes.  Returns the site, 0 with a reason. */
static uintptr_t check_function_entry(uintptr_t start, uintptr_t end, uintptr_t text_start, uintptr_t text_end,
                                      bool whole_module, struct displaced *displaced, char *why, size_t why_len)
{
    uintptr_t site = patch_site(start, why, why_len);
    if (site == 0 || !decode_displaced(site, end > start ? end : text_end, DISPLACE_FUNCTION_ENTRY,
                                       displaced, why, why_len))
        return 0;
    /* Markers check the whole module (code shared between functions); the dlopen hooks,
     * small functions of the C library, check their own body and spare every program the
     * decoding of all of libc at start-up. */
    uintptr_t into;
    if (whole_module || end <= start) {
        const struct branch_targets *targets = targets_of_module(text_start, text_end);
        into = targets ? branch_into(targets, site, site + displaced->covered) : 0;
    } else {
        into = branch_into_function(start, end, site, site + displaced->covered);
    }
    if (into) {
        refuse(why, why_len, "a jump elsewhere in the module lands inside its first %zu bytes "
               "(at +%#lx)", displaced->covered, (unsigned long)(into - start));
        return 0;
    }
    return site;
}

bool hook_patch(uintptr_t start, uintptr_t end, uintptr_t text_start, uintptr_t text_end,
                unsigned index, bool whole_module, uintptr_t *resume, char *why, size_t why_len)
{
    struct displaced displaced;
    uintptr_t site = check_function_entry(start, end, text_start, text_end, whole_module, &displaced,
                                          why, why_len);
    return site != 0 && install_trampoline(site, &displaced, index, resume, why, why_len);
}

bool hook_patch_check(uintptr_t start, uintptr_t end, uintptr_t text_start, uintptr_t text_end,
                      char *why, size_t why_len)
{
    struct displaced displaced;
    return check_function_entry(start, end, text_start, text_end, true, &displaced, why, why_len) != 0;
}

bool hook_relocate_into(uintptr_t start, uintptr_t end, uintptr_t text_start, uintptr_t text_end,
                        uint8_t *buffer, size_t buffer_len, uintptr_t buffer_address,
                        size_t *displaced_bytes, size_t *written, char *why, size_t why_len)
{
    struct displaced displaced;
    uintptr_t site = check_function_entry(start, end, text_start, text_end, true, &displaced, why, why_len);
    if (site == 0)
        return false;
    size_t room = TRAMPOLINE_BYTES - TRAMPOLINE_RESUME_OFFSET;
    size_t len = relocate_displaced(site, &displaced, buffer, buffer_len < room ? buffer_len : room,
                                    buffer_address, why, why_len);
    if (len == 0)
        return false;
    *displaced_bytes = displaced.covered;
    *written = len;
    return true;
}
