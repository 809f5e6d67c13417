/*
 * test_relocate_libraries.c — the function-entry relocator (preload/arch/x86_64/patch.c)
 * over every function of large Debian libraries: libc, libsqlite3, libpython3.11, libstdc++.
 *
 * Every function start of the module's .eh_frame_hdr table goes through hook_relocate_into,
 * which runs hook_patch's checks (whole module) and writes the trampoline's resuming code into
 * a buffer within 2 GiB of the library instead of patching anything.  Each function is either
 * refused with one of the documented reasons, or relocated into code that does the same,
 * checked statically with capstone, instruction by instruction, against the original:
 *
 *   - an instruction that is not a direct branch is copied: same mnemonic, operands and bytes;
 *     a RIP-relative operand (capstone prints "rip") may change only its displacement, and
 *     must address the same absolute address from the new place;
 *   - jmp rel  -> jmp *0(%rip); .quad target (or a direct jmp to the same target);
 *   - jcc rel  -> the inverted jcc over "jmp *0(%rip); .quad target" (or the same jcc, same target);
 *   - call rel -> lea -8(%rsp),%rsp; movl $low,(%rsp); movl $high,4(%rsp); jmp *0(%rip);
 *                 .quad target, pushing the original next address, and only as the last
 *                 displaced instruction (the callee returns into the function);
 *   - then jmp *0(%rip); .quad site+displaced, the last bytes written: nothing falls through.
 *
 * The site is the function's start, after an endbr64.  A library that cannot be loaded is a
 * failure naming its Debian package (scripts/lib/setup.sh installs them).
 */
#define TEST_CASE_TIMEOUT 120
#include "check.h"

#include "arch.h"
#include "elf_reader.h"

#include <capstone/capstone.h>
#include <dlfcn.h>
#include <link.h>

/* --- the hooks' C side, which the stubs reference (nothing is patched here) --------------- */

uintptr_t hook_enter_fast(uintptr_t index, uintptr_t *slot)
{
    (void)index;
    (void)slot;
    return 0;
}

uintptr_t hook_enter_slow(uintptr_t index, uintptr_t *slot)
{
    (void)index;
    (void)slot;
    return 0;
}

uintptr_t hook_exit_fast(uintptr_t *slot)
{
    (void)slot;
    return 0;
}

uintptr_t hook_exit_slow(uintptr_t *slot)
{
    (void)slot;
    return 0;
}

/* --- capstone, loaded as patch.c loads it (hook_arch_init has loaded it already) --------- */

static struct {
    cs_err (*open)(cs_arch, cs_mode, csh *);
    cs_err (*option)(csh, cs_opt_type, size_t);
    bool (*disasm_iter)(csh, const uint8_t **, size_t *, uint64_t *, cs_insn *);
    cs_insn *(*malloc)(csh);
    void (*free)(cs_insn *, size_t);
} cs;
static csh handle;

static void capstone_open(void)
{
    void *library = dlopen("libcapstone.so.4", RTLD_NOW | RTLD_NOLOAD);
    if (library == NULL)
        library = dlopen("libcapstone.so.4", RTLD_NOW);
    if (library == NULL)
        library = dlopen("libcapstone.so", RTLD_NOW);
    REQUIRE(library != NULL);
    *(void **)&cs.open = dlsym(library, "cs_open");
    *(void **)&cs.option = dlsym(library, "cs_option");
    *(void **)&cs.disasm_iter = dlsym(library, "cs_disasm_iter");
    *(void **)&cs.malloc = dlsym(library, "cs_malloc");
    *(void **)&cs.free = dlsym(library, "cs_free");
    REQUIRE(cs.open && cs.option && cs.disasm_iter && cs.malloc && cs.free);
    REQUIRE(cs.open(CS_ARCH_X86, CS_MODE_64, &handle) == CS_ERR_OK);
    cs.option(handle, CS_OPT_DETAIL, CS_OPT_ON);
}

/* One instruction at code[offset] (len bytes in all), as if code sat at address. */
static bool decode_at(const uint8_t *code, size_t len, size_t offset, uintptr_t address, cs_insn *insn)
{
    if (offset >= len)
        return false;
    const uint8_t *p = code + offset;
    size_t size = len - offset;
    uint64_t at = address + offset;
    return cs.disasm_iter(handle, &p, &size, &at, insn);
}

/* --- the forms the relocation may produce ------------------------------------------------ */

static const x86_insn conditions[][2] = {
    { X86_INS_JO, X86_INS_JNO }, { X86_INS_JB, X86_INS_JAE }, { X86_INS_JE, X86_INS_JNE },
    { X86_INS_JBE, X86_INS_JA }, { X86_INS_JS, X86_INS_JNS }, { X86_INS_JP, X86_INS_JNP },
    { X86_INS_JL, X86_INS_JGE }, { X86_INS_JLE, X86_INS_JG },
};

/* The opposite condition of a jcc, or X86_INS_INVALID when id is none. */
static unsigned inverse_condition(unsigned id)
{
    for (size_t i = 0; i < sizeof conditions / sizeof conditions[0]; i++) {
        if (conditions[i][0] == id)
            return conditions[i][1];
        if (conditions[i][1] == id)
            return conditions[i][0];
    }
    return X86_INS_INVALID;
}

static bool is_direct(const cs_insn *insn)
{
    const cs_x86 *x86 = &insn->detail->x86;
    return x86->op_count == 1 && x86->operands[0].type == X86_OP_IMM;
}

/* Relative branches of x86-64: the jcc, jmp, call, loop family, j*cxz, xbegin. */
static bool is_relative_branch_id(unsigned id)
{
    return inverse_condition(id) != X86_INS_INVALID || id == X86_INS_JMP || id == X86_INS_CALL ||
           id == X86_INS_LOOP || id == X86_INS_LOOPE || id == X86_INS_LOOPNE ||
           id == X86_INS_JRCXZ || id == X86_INS_JECXZ || id == X86_INS_JCXZ || id == X86_INS_XBEGIN;
}

/* "jmp *0(%rip); .quad target" at code[*offset]: advances past it, gives the target. */
static bool absolute_jump_at(const uint8_t *code, size_t len, size_t *offset, uintptr_t address,
                             cs_insn *insn, uintptr_t *target)
{
    if (!decode_at(code, len, *offset, address, insn))
        return false;
    const cs_x86 *x86 = &insn->detail->x86;
    if (insn->id != X86_INS_JMP || x86->op_count != 1 || x86->operands[0].type != X86_OP_MEM ||
        x86->operands[0].mem.base != X86_REG_RIP || x86->operands[0].mem.index != X86_REG_INVALID ||
        x86->operands[0].mem.disp != 0 || x86->operands[0].mem.segment != X86_REG_INVALID ||
        *offset + insn->size + 8 > len)
        return false;
    memcpy(target, code + *offset + insn->size, 8);
    *offset += insn->size + 8;
    return true;
}

/* Is the operand [rsp + disp] of the given size? */
static bool is_stack_slot(const cs_x86_op *op, int64_t disp, unsigned size)
{
    return op->type == X86_OP_MEM && op->mem.base == X86_REG_RSP && op->mem.index == X86_REG_INVALID &&
           op->mem.segment == X86_REG_INVALID && op->mem.disp == disp && op->size == size;
}

/* A RIP-relative operand as capstone prints it: "[rip]", "[rip + 0x10]", "[rip - 8]".  Gives
 * the displacement and op_str with it replaced, for comparing the rest. */
static bool parse_rip(const char *op_str, int64_t *disp, char *rest, size_t rest_len)
{
    const char *p = strstr(op_str, "[rip");
    if (p == NULL)
        return false;
    const char *q = p + 4, *close = strchr(q, ']');
    if (close == NULL)
        return false;
    if (q == close) {
        *disp = 0;
    } else if (strncmp(q, " + ", 3) == 0 || strncmp(q, " - ", 3) == 0) {
        char *end;
        long long value = strtoll(q + 3, &end, 0);
        if (end != close)
            return false;
        *disp = q[1] == '-' ? -value : value;
    } else {
        return false;
    }
    snprintf(rest, rest_len, "%.*s[rip+D]%s", (int)(p - op_str), op_str, close + 1);
    return true;
}

struct function_check {
    uintptr_t site, displaced, buffer_address;
    const uint8_t *buffer;
    size_t written, at; /* at: where the next relocated instruction starts in buffer */
    cs_insn *original, *relocated;
    char *why;
    size_t why_len;
    /* Relocated instructions by form, over the library. */
    unsigned rip_relative, jcc, jmp, call, indirect_call;
};

static bool fail(struct function_check *c, const char *format, ...) __attribute__((format(printf, 2, 3)));
static bool fail(struct function_check *c, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(c->why, c->why_len, format, args);
    va_end(args);
    return false;
}

/* A position-independent instruction or a RIP-relative one: copied as it is, or with its
 * displacement rewritten. */
static bool check_copied(struct function_check *c, const cs_insn *o)
{
    cs_insn *r = c->relocated;
    if (!decode_at(c->buffer, c->written, c->at, c->buffer_address, r))
        return fail(c, "'%s %s' has no decodable copy", o->mnemonic, o->op_str);
    if (r->id != o->id || r->size != o->size || strcmp(r->mnemonic, o->mnemonic) != 0)
        return fail(c, "'%s %s' became '%s %s'", o->mnemonic, o->op_str, r->mnemonic, r->op_str);
    int64_t o_disp, r_disp;
    char o_rest[192], r_rest[192];
    if (parse_rip(o->op_str, &o_disp, o_rest, sizeof o_rest)) {
        if (!parse_rip(r->op_str, &r_disp, r_rest, sizeof r_rest) || strcmp(o_rest, r_rest) != 0)
            return fail(c, "'%s %s' became '%s %s'", o->mnemonic, o->op_str, r->mnemonic, r->op_str);
        uintptr_t o_target = o->address + o->size + (uintptr_t)o_disp;
        uintptr_t r_target = r->address + r->size + (uintptr_t)r_disp;
        if (o_target != r_target)
            return fail(c, "'%s %s' addresses %#lx, its copy '%s %s' %#lx", o->mnemonic, o->op_str,
                        (unsigned long)o_target, r->mnemonic, r->op_str, (unsigned long)r_target);
        /* The bytes differ in the displacement only: at most 4 bytes in a row. */
        int first = -1, last = -1;
        for (int i = 0; i < o->size; i++)
            if (o->bytes[i] != r->bytes[i]) {
                if (first < 0)
                    first = i;
                last = i;
            }
        if (first >= 0 && last - first >= 4)
            return fail(c, "'%s %s': its copy differs in bytes %d..%d, more than a displacement",
                        o->mnemonic, o->op_str, first, last);
    } else if (strcmp(o->op_str, r->op_str) != 0 || memcmp(o->bytes, r->bytes, o->size) != 0) {
        return fail(c, "'%s %s' became '%s %s'", o->mnemonic, o->op_str, r->mnemonic, r->op_str);
    }
    c->rip_relative += strstr(o->op_str, "rip") != NULL;
    c->at += r->size;
    return true;
}

/* lea -8(%rsp),%rsp; movl $low,(%rsp); movl $high,4(%rsp): the call o pushes its original next
 * address, which must be the end of the displaced bytes. */
static bool check_pushes_next(struct function_check *c, const cs_insn *o)
{
    cs_insn *r = c->relocated;
    uintptr_t next = o->address + o->size;
    if (next != c->site + c->displaced)
        return fail(c, "'%s %s' is displaced but not last: the callee would return into the "
                    "displaced bytes", o->mnemonic, o->op_str);
    uint32_t half[2];
    for (int i = 0; i < 3; i++) {
        if (!decode_at(c->buffer, c->written, c->at, c->buffer_address, r))
            return fail(c, "'%s %s': relocated call cut short", o->mnemonic, o->op_str);
        const cs_x86 *x86 = &r->detail->x86;
        bool ok = x86->op_count == 2;
        if (ok && i == 0)
            ok = r->id == X86_INS_LEA && x86->operands[0].type == X86_OP_REG &&
                 x86->operands[0].reg == X86_REG_RSP && is_stack_slot(&x86->operands[1], -8, 8);
        else if (ok)
            ok = r->id == X86_INS_MOV && is_stack_slot(&x86->operands[0], 4 * (i - 1), 4) &&
                 x86->operands[1].type == X86_OP_IMM;
        if (!ok)
            return fail(c, "'%s %s': relocated call has '%s %s'", o->mnemonic, o->op_str, r->mnemonic,
                        r->op_str);
        if (i > 0)
            half[i - 1] = (uint32_t)x86->operands[1].imm;
        c->at += r->size;
    }
    uintptr_t pushed = (uintptr_t)half[0] | (uintptr_t)half[1] << 32;
    if (pushed != next)
        return fail(c, "'%s %s' pushes %#lx, not its next address %#lx", o->mnemonic, o->op_str,
                    (unsigned long)pushed, (unsigned long)next);
    return true;
}

/* call through a register or memory: the push, then a jmp through the same operand (read 8
 * bytes further when it is on the stack, past the pushed address). */
static bool check_indirect_call(struct function_check *c, const cs_insn *o)
{
    if (!check_pushes_next(c, o))
        return false;
    cs_insn *r = c->relocated;
    if (!decode_at(c->buffer, c->written, c->at, c->buffer_address, r))
        return fail(c, "'%s %s': no jump after the pushed address", o->mnemonic, o->op_str);
    char mnemonic[64];
    const char *call = strstr(o->mnemonic, "call");
    if (call == NULL)
        return fail(c, "'%s %s': not a call", o->mnemonic, o->op_str);
    snprintf(mnemonic, sizeof mnemonic, "%.*sjmp%s", (int)(call - o->mnemonic), o->mnemonic, call + 4);
    const cs_x86_op *a = &o->detail->x86.operands[0], *b = &r->detail->x86.operands[0];
    bool same = r->id == X86_INS_JMP && strcmp(r->mnemonic, mnemonic) == 0 &&
                o->detail->x86.op_count == 1 && r->detail->x86.op_count == 1 && a->type == b->type &&
                a->size == b->size;
    if (same && a->type == X86_OP_REG) {
        same = a->reg == b->reg && a->reg != X86_REG_RSP;
    } else if (same && a->type == X86_OP_MEM) {
        same = a->mem.segment == b->mem.segment && a->mem.base == b->mem.base &&
               a->mem.index == b->mem.index && a->mem.scale == b->mem.scale;
        if (a->mem.base == X86_REG_RIP)
            same = same && o->address + o->size + (uintptr_t)a->mem.disp ==
                               r->address + r->size + (uintptr_t)b->mem.disp;
        else
            same = same && b->mem.disp == a->mem.disp + (a->mem.base == X86_REG_RSP ? 8 : 0);
    } else {
        same = false;
    }
    if (!same)
        return fail(c, "'%s %s' became '%s %s' after the pushed address", o->mnemonic, o->op_str,
                    r->mnemonic, r->op_str);
    c->at += r->size;
    c->indirect_call++;
    return true;
}

static bool check_branch(struct function_check *c, const cs_insn *o)
{
    cs_insn *r = c->relocated;
    uintptr_t target = (uintptr_t)o->detail->x86.operands[0].imm, jump_target;
    if (o->id == X86_INS_JMP) {
        size_t at = c->at;
        if (absolute_jump_at(c->buffer, c->written, &at, c->buffer_address, r, &jump_target)) {
            if (jump_target != target)
                return fail(c, "'%s %s' jumps to %#lx instead", o->mnemonic, o->op_str,
                            (unsigned long)jump_target);
            c->at = at;
            c->jmp++;
            return true;
        }
        if (decode_at(c->buffer, c->written, c->at, c->buffer_address, r) && r->id == X86_INS_JMP &&
            is_direct(r) && (uintptr_t)r->detail->x86.operands[0].imm == target) {
            c->at += r->size;
            c->jmp++;
            return true;
        }
        return fail(c, "'%s %s' is not relocated as a jump to its target", o->mnemonic, o->op_str);
    }
    if (o->id == X86_INS_CALL) {
        if (!check_pushes_next(c, o))
            return false;
        if (!absolute_jump_at(c->buffer, c->written, &c->at, c->buffer_address, r, &jump_target) ||
            jump_target != target)
            return fail(c, "'%s %s': relocated call does not jump to its target", o->mnemonic, o->op_str);
        c->call++;
        return true;
    }
    unsigned inverse = inverse_condition(o->id);
    if (inverse == X86_INS_INVALID)
        return fail(c, "'%s %s' was relocated: it has no long form", o->mnemonic, o->op_str);
    if (!decode_at(c->buffer, c->written, c->at, c->buffer_address, r) || !is_direct(r))
        return fail(c, "'%s %s' is not relocated as a conditional jump", o->mnemonic, o->op_str);
    uintptr_t r_target = (uintptr_t)r->detail->x86.operands[0].imm;
    if (r->id == o->id) {
        if (r_target != target)
            return fail(c, "'%s %s' became '%s %s'", o->mnemonic, o->op_str, r->mnemonic, r->op_str);
        c->at += r->size;
        c->jcc++;
        return true;
    }
    if (r->id != inverse)
        return fail(c, "'%s %s' became '%s %s'", o->mnemonic, o->op_str, r->mnemonic, r->op_str);
    char skip[256];
    snprintf(skip, sizeof skip, "%s %s", r->mnemonic, r->op_str);
    c->at += r->size;
    if (!absolute_jump_at(c->buffer, c->written, &c->at, c->buffer_address, r, &jump_target) ||
        jump_target != target)
        return fail(c, "'%s %s': the inverted '%s' is not followed by a jump to its target", o->mnemonic,
                    o->op_str, skip);
    if (r_target != c->buffer_address + c->at)
        return fail(c, "'%s %s': the inverted '%s' does not skip exactly the jump", o->mnemonic,
                    o->op_str, skip);
    c->jcc++;
    return true;
}

/* Is the relocation of the function whose patch site is site equivalent?  false with what
 * differs in c->why. */
static bool check_equivalent(struct function_check *c, uintptr_t end)
{
    if (c->displaced < 5)
        return fail(c, "only %zu bytes displaced", (size_t)c->displaced);
    if (c->site + c->displaced > end)
        return fail(c, "the displaced bytes run past the function's end");
    size_t offset = 0;
    while (offset < c->displaced) {
        cs_insn *o = c->original;
        if (!decode_at((const uint8_t *)c->site, c->displaced, offset, c->site, o))
            return fail(c, "the original cannot be decoded at +%zu within the displaced bytes", offset);
        bool ok = is_relative_branch_id(o->id) && is_direct(o) ? check_branch(c, o)
                  : o->id == X86_INS_CALL                       ? check_indirect_call(c, o)
                                                                : check_copied(c, o);
        if (!ok)
            return false;
        offset += o->size;
    }
    uintptr_t back;
    if (!absolute_jump_at(c->buffer, c->written, &c->at, c->buffer_address, c->relocated, &back))
        return fail(c, "no absolute jump back after the relocated instructions");
    if (back != c->site + c->displaced)
        return fail(c, "the jump back goes to %#lx, not site + %zu", (unsigned long)back, (size_t)c->displaced);
    if (c->at != c->written)
        return fail(c, "%zu bytes written after the jump back", c->written - c->at);
    return true;
}

/* --- disassemblies, for failures --------------------------------------------------------- */

static void print_original(uintptr_t site, size_t len)
{
    cs_insn *insn = cs.malloc(handle);
    for (size_t at = 0; at < len;) {
        if (!decode_at((const uint8_t *)site, len, at, site, insn)) {
            fprintf(stderr, "      %#lx: .byte %#x\n", (unsigned long)(site + at), ((const uint8_t *)site)[at]);
            at++;
            continue;
        }
        fprintf(stderr, "      %#lx: %s %s\n", (unsigned long)insn->address, insn->mnemonic, insn->op_str);
        at += insn->size;
    }
    cs.free(insn, 1);
}

static void print_relocated(const uint8_t *code, size_t len, uintptr_t address)
{
    cs_insn *insn = cs.malloc(handle);
    for (size_t at = 0; at < len;) {
        size_t next = at;
        uintptr_t target;
        if (absolute_jump_at(code, len, &next, address, insn, &target)) {
            fprintf(stderr, "      %#lx: jmp qword ptr [rip] ; .quad %#lx\n", (unsigned long)(address + at),
                    (unsigned long)target);
            at = next;
        } else if (decode_at(code, len, at, address, insn)) {
            fprintf(stderr, "      %#lx: %s %s\n", (unsigned long)insn->address, insn->mnemonic, insn->op_str);
            at += insn->size;
        } else {
            fprintf(stderr, "      %#lx: .byte %#x\n", (unsigned long)(address + at), code[at]);
            at++;
        }
    }
    cs.free(insn, 1);
}

/* --- refusals ------------------------------------------------------------------------------ */

/* The refusals of check_function_entry and the relocation (docs/design.md, "Markers"). */
static const char *const documented_refusals[] = {
    "too short",                    /* ret, int3, jmp or the function's end in the first 5 bytes */
    "has no long form",             /* loop, jrcxz */
    "lands inside its first",       /* a direct branch of the module into the displaced bytes */
    "holds a breakpoint",           /* a debugger's int3 */
    "cannot relocate RIP-relative", /* capstone does not say where the displacement is */
};

struct reason_count {
    char reason[120];
    unsigned count;
};

/* The reason without what varies from function to function: numbers, "(at +0x...)". */
static void reason_key(const char *why, char *key, size_t key_len)
{
    size_t n = 0;
    for (const char *p = why; *p && n + 1 < key_len; p++) {
        if (strncmp(p, " (at +", 6) == 0)
            break;
        if (*p >= '0' && *p <= '9') {
            while (p[1] >= '0' && p[1] <= '9')
                p++;
            key[n++] = 'N';
            continue;
        }
        key[n++] = *p;
    }
    key[n] = '\0';
}

static void count_reason(struct reason_count *reasons, unsigned *count, unsigned max, const char *why)
{
    char key[120];
    reason_key(why, key, sizeof key);
    for (unsigned i = 0; i < *count; i++)
        if (strcmp(reasons[i].reason, key) == 0) {
            reasons[i].count++;
            return;
        }
    if (*count < max) {
        snprintf(reasons[*count].reason, sizeof reasons[*count].reason, "%s", key);
        reasons[(*count)++].count = 1;
    }
}

/* --- the libraries ------------------------------------------------------------------------- */

struct module_query {
    const char *file_name;
    struct loaded_module module;
    bool found;
};

static bool find_module(const struct loaded_module *module, void *data)
{
    struct module_query *query = data;
    if (strcmp(module->file_name, query->file_name) != 0)
        return true;
    query->module = *module;
    query->found = true;
    return false;
}

/* size bytes mapped in the free gap nearest to [low, high), as a trampoline area would be. */
static uint8_t *map_near(uintptr_t low, uintptr_t high, size_t size)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    REQUIRE(maps != NULL);
    char line[1024];
    uintptr_t previous_end = 0x10000, best = 0, best_reach = UINTPTR_MAX;
    const uintptr_t guard = 65536;
    while (fgets(line, sizeof line, maps)) {
        unsigned long start, end;
        if (sscanf(line, "%lx-%lx", &start, &end) != 2)
            continue;
        if (start > previous_end && start - previous_end >= size + 2 * guard) {
            uintptr_t candidate = start <= low ? (start - guard - size) & ~(guard - 1)
                                               : (previous_end + 2 * guard - 1) & ~(guard - 1);
            uintptr_t a = candidate + size > low ? candidate + size - low : low - candidate;
            uintptr_t b = high > candidate ? high - candidate : candidate + size - high;
            uintptr_t reach = a > b ? a : b;
            if (reach < best_reach) {
                best = candidate;
                best_reach = reach;
            }
        }
        if (end > previous_end)
            previous_end = end;
    }
    fclose(maps);
    REQUIRE(best_reach < ((uintptr_t)1 << 31) - ((uintptr_t)1 << 20));
    void *p = mmap((void *)best, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                   -1, 0);
    REQUIRE(p == (void *)best);
    return p;
}

/* The function starts of .eh_frame_hdr's table (datarel sdata4, as elf_function_at reads it),
 * in order; returns their count and the table. */
static const int32_t *fde_table(const struct loaded_module *module, uint32_t *count)
{
    const uint8_t *hdr = module->eh_frame_hdr;
    REQUIRE(hdr != NULL);
    REQUIRE(hdr[0] == 1 && hdr[3] == 0x3b); /* DW_EH_PE_datarel | DW_EH_PE_sdata4 */
    REQUIRE((hdr[1] & 0x0f) == 0x0b || (hdr[1] & 0x0f) == 0x03);
    REQUIRE((hdr[2] & 0x0f) == 0x0b || (hdr[2] & 0x0f) == 0x03);
    memcpy(count, hdr + 8, 4);
    return (const int32_t *)(hdr + 12);
}

#define SHOWN_FAILURES 20

static void relocate_library(const char *file_name, const char *package)
{
    char why[400];
    REQUIRE(hook_arch_init(why, sizeof why));
    capstone_open();

    void *library = dlopen(file_name, RTLD_NOW | RTLD_NOLOAD);
    if (library == NULL)
        library = dlopen(file_name, RTLD_NOW);
    if (library == NULL) {
        CHECK_MSG(false, "cannot load %s (%s): install the Debian package %s (scripts/lib/setup.sh)",
                  file_name, dlerror(), package);
        return;
    }
    struct module_query query;
    memset(&query, 0, sizeof query);
    query.file_name = file_name;
    elf_for_each_module(find_module, &query);
    REQUIRE(query.found);
    const struct loaded_module *module = &query.module;
    uint32_t count;
    const int32_t *table = fde_table(module, &count);
    uint8_t *buffer = map_near(module->text_start, module->text_end, 65536);

    struct function_check c;
    memset(&c, 0, sizeof c);
    c.original = cs.malloc(handle);
    c.relocated = cs.malloc(handle);
    char difference[400];
    c.why = difference;
    c.why_len = sizeof difference;

    struct reason_count reasons[64];
    unsigned reason_count = 0, functions = 0, relocated = 0, refused = 0, failures = 0;
    uintptr_t previous = 0;
    double started = test_now();
    for (uint32_t i = 0; i < count; i++) {
        uintptr_t start = (uintptr_t)module->eh_frame_hdr + (intptr_t)table[2 * i];
        if (start == previous || start < module->text_start || start >= module->text_end)
            continue;
        previous = start;
        struct function_bounds bounds;
        if (!elf_function_at(module, start, &bounds)) {
            CHECK_MSG(false, "%s+%#lx: elf_function_at finds no function", file_name,
                      (unsigned long)(start - module->load_base));
            continue;
        }
        functions++;
        size_t displaced = 0, written = 0;
        memset(why, 0, sizeof why);
        memset(buffer, 0xcc, 256);
        if (!hook_relocate_into(bounds.start, bounds.end, module->text_start, module->text_end, buffer,
                                4096, (uintptr_t)buffer, &displaced, &written, why, sizeof why)) {
            refused++;
            bool documented = false;
            for (size_t k = 0; k < sizeof documented_refusals / sizeof documented_refusals[0]; k++)
                documented |= strstr(why, documented_refusals[k]) != NULL;
            CHECK_MSG(why[0] != '\0' && documented, "%s+%#lx: refused for an undocumented reason: '%s'",
                      file_name, (unsigned long)(start - module->load_base), why);
            count_reason(reasons, &reason_count, 64, why[0] ? why : "(no reason)");
            continue;
        }
        relocated++;
        c.site = memcmp((const void *)start, "\xf3\x0f\x1e\xfa", 4) == 0 ? start + 4 : start;
        c.displaced = displaced;
        c.buffer = buffer;
        c.buffer_address = (uintptr_t)buffer;
        c.written = written;
        c.at = 0;
        bool equivalent = check_equivalent(&c, bounds.end > bounds.start ? bounds.end : module->text_end);
        if (!equivalent) {
            failures++;
            CHECK_MSG(false, "%s+%#lx: relocation not equivalent: %s", file_name,
                      (unsigned long)(start - module->load_base), difference);
            if (failures <= SHOWN_FAILURES) {
                fprintf(stderr, "    original (%zu bytes displaced):\n", displaced);
                print_original(c.site, displaced);
                fprintf(stderr, "    relocated (%zu bytes):\n", written);
                print_relocated(buffer, written, (uintptr_t)buffer);
            }
        }
    }
    double seconds = test_now() - started;
    printf("%s: %u functions, %u relocated, %u refused, %u not equivalent, %.1f s\n", file_name, functions,
           relocated, refused, failures, seconds);
    for (unsigned i = 0; i < reason_count; i++)
        printf("    refused %6u  %s\n", reasons[i].count, reasons[i].reason);
    printf("    relocated: %u RIP-relative, %u jcc, %u jmp, %u call, %u indirect call\n", c.rip_relative,
           c.jcc, c.jmp, c.call, c.indirect_call);
    CHECK(functions > 1000);
    CHECK(relocated > functions / 2);
    cs.free(c.original, 1);
    cs.free(c.relocated, 1);
}

static void test_libc(void) { relocate_library("libc.so.6", "libc6"); }
static void test_libsqlite3(void) { relocate_library("libsqlite3.so.0", "libsqlite3-0"); }
static void test_libpython(void) { relocate_library("libpython3.11.so.1.0", "libpython3.11"); }
static void test_libstdcxx(void) { relocate_library("libstdc++.so.6", "libstdc++6"); }

static const struct test_case cases[] = {
    TEST_CASE(libc),
    TEST_CASE(libsqlite3),
    TEST_CASE(libpython),
    TEST_CASE(libstdcxx),
};

int main(int argc, char **argv)
{
    return check_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
