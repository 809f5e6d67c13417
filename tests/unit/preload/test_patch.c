/*
 * test_patch.c — patching a function's entry (preload/arch/x86_64/patch.c), on byte
 * fixtures, without preloading anything.
 *
 * Each fixture is a function written in assembly so its first bytes are known: an endbr64,
 * a RIP-relative load, a short conditional jump, a call, a jump back into the displaced
 * bytes, a lone ret, indirect calls.  The test patches it, calls it, and checks that it returns what it
 * returned unpatched and that the hook's entry ran once per call; the shapes that cannot be
 * relocated must be refused with their reason.  The hooks' C side (hook_enter_fast & co.) is
 * the test's own: the entry counts the call and resumes the displaced instructions.
 */
#include "check.h"

#include "arch.h"

#define FIXTURE(name, body)                                                                    \
    __asm__(".text\n.globl " #name "\n.type " #name ", @function\n.p2align 4\n" #name ":\n" body \
            "\n.size " #name ", .-" #name "\n")

long fixture_value = 42;

/* endbr64; mov $7,%eax; ret — the endbr64 stays, the mov moves. */
FIXTURE(fixture_endbr, "endbr64\n mov $7, %eax\n add $1, %eax\n ret\n");
/* A RIP-relative load first: its displacement must be rewritten for the trampoline. */
FIXTURE(fixture_rip_relative, "mov fixture_value(%rip), %rax\n add $1, %rax\n ret\n");
/* je rel8 within the first bytes: relocated as the inverted condition over an absolute jump. */
FIXTURE(fixture_short_jcc, "test %edi, %edi\n je 1f\n mov $10, %eax\n ret\n1: mov $20, %eax\n ret\n");
/* A call first (5 bytes): relocated so the callee returns into the function itself. */
FIXTURE(fixture_call_first, "call fixture_callee\n add $100, %eax\n ret\n");
FIXTURE(fixture_callee, "mov $5, %eax\n ret\n");
/* Too short: a ret within the first 5 bytes. */
FIXTURE(fixture_too_short, "xor %eax, %eax\n ret\n nop\n nop\n nop\n nop\n");
/* jrcxz has no long form. */
FIXTURE(fixture_jrcxz, "jrcxz 1f\n mov $1, %eax\n ret\n1: mov $2, %eax\n ret\n");
/* A loop that jumps back to the second instruction, inside the displaced bytes. */
FIXTURE(fixture_loop_into_head, "xor %eax, %eax\n2: add $1, %eax\n cmp %edi, %eax\n jl 2b\n ret\n");
/* An empty function followed by alignment padding (as glibc's _dl_debug_state). */
FIXTURE(fixture_empty, "ret\n .byte 0x66, 0x66, 0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0\n nopl 0(%rax)\n");
FIXTURE(fixture_empty_end, "ret\n");
/* Indirect calls, displaced last: the callee must return into the function, as from a direct
 * call (where unwinders find the function's frame description), not into the trampoline.
 * fixture_return_address returns the address it returns to. */
FIXTURE(fixture_return_address, "mov (%rsp), %rax\n ret\n");
/* call through RIP-relative memory (6 bytes). */
FIXTURE(fixture_call_rip_memory, "call *fixture_callee_pointer(%rip)\n ret\n");
/* mov (3 bytes), then call through a register (2). */
FIXTURE(fixture_call_register, "mov %rdi, %rax\n call *%rax\n ret\n");
/* call through the stack (4 bytes): read 8 bytes further once the return address is pushed. */
FIXTURE(fixture_call_stack, "push %rdi\n push %rdi\n call *8(%rsp)\n pop %rcx\n pop %rcx\n ret\n");
/* call through the top of the stack, no displacement (3 bytes): one is added. */
FIXTURE(fixture_call_stack_top, "push %rdi\n mov %rdi, %rax\n call *(%rsp)\n pop %rcx\n ret\n");
/* A call within the first 5 bytes, not the last displaced instruction: refused. */
FIXTURE(fixture_call_early, "call *%rdi\n nop\n nop\n nop\n ret\n");
FIXTURE(fixture_calls_end, "ret\n");

long fixture_endbr(void);
long fixture_rip_relative(void);
long fixture_short_jcc(int flag);
long fixture_call_first(void);
long fixture_callee(void);
long fixture_too_short(void);
long fixture_jrcxz(void);
long fixture_loop_into_head(int n);
void fixture_empty(void);
void fixture_empty_end(void);
uintptr_t fixture_return_address(void);
typedef uintptr_t (*callee_function)(void);
uintptr_t fixture_call_rip_memory(void);
uintptr_t fixture_call_register(callee_function callee);
uintptr_t fixture_call_stack(callee_function callee);
uintptr_t fixture_call_stack_top(callee_function callee);
uintptr_t fixture_call_early(callee_function callee);
void fixture_calls_end(void);
callee_function fixture_callee_pointer = fixture_return_address;

/* --- the hooks' C side, as hook/ would provide it ----------------------------------------- */

#define TEST_HOOKS 16
static uintptr_t resume_at[TEST_HOOKS];
static unsigned entries[TEST_HOOKS];

uintptr_t hook_enter_fast(uintptr_t index, uintptr_t *slot)
{
    (void)slot;
    entries[index]++;
    return resume_at[index];
}

uintptr_t hook_enter_slow(uintptr_t index, uintptr_t *slot)
{
    (void)slot;
    return resume_at[index];
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

static char why[400];

static void setup(void)
{
    test_setup("");
    REQUIRE(hook_arch_init(why, sizeof why));
}

/* Patches function (its bounds: [start, next)) as hook index; checks against its module's
 * own text would need the ELF reader: the function's own body is checked here. */
static bool patch(unsigned index, void *function, void *next)
{
    memset(why, 0, sizeof why);
    return hook_patch((uintptr_t)function, (uintptr_t)next, 0, 0, index, false, &resume_at[index], why,
                      sizeof why);
}

static void test_endbr_stays_and_mov_moves(void)
{
    setup();
    CHECK_EQ(fixture_endbr(), 8);
    REQUIRE(patch(0, (void *)fixture_endbr, (void *)fixture_rip_relative));
    CHECK_EQ(*(const uint8_t *)((uintptr_t)fixture_endbr + 4), 0xe9); /* jmp after the endbr64 */
    CHECK_EQ(fixture_endbr(), 8);
    CHECK_EQ(fixture_endbr(), 8);
    CHECK_EQ(entries[0], 2);
}

static void test_rip_relative_load_is_rewritten(void)
{
    setup();
    CHECK_EQ(fixture_rip_relative(), 43);
    REQUIRE(patch(1, (void *)fixture_rip_relative, (void *)fixture_short_jcc));
    CHECK_EQ(fixture_rip_relative(), 43);
    fixture_value = 99;
    CHECK_EQ(fixture_rip_relative(), 100); /* reads the variable, not a stale copy */
    CHECK_EQ(entries[1], 2);
}

static void test_short_conditional_jump_is_relocated(void)
{
    setup();
    REQUIRE(patch(2, (void *)fixture_short_jcc, (void *)fixture_call_first));
    CHECK_EQ(fixture_short_jcc(0), 20);
    CHECK_EQ(fixture_short_jcc(1), 10);
    CHECK_EQ(entries[2], 2);
}

static void test_call_first_returns_into_the_function(void)
{
    setup();
    REQUIRE(patch(3, (void *)fixture_call_first, (void *)fixture_callee));
    CHECK_EQ(fixture_call_first(), 105);
    CHECK_EQ(entries[3], 1);
}

static void test_refusals_name_the_reason(void)
{
    setup();
    CHECK(!patch(4, (void *)fixture_too_short, (void *)fixture_jrcxz));
    CHECK_STR_CONTAINS(why, "too short");
    CHECK(!patch(5, (void *)fixture_jrcxz, (void *)fixture_loop_into_head));
    CHECK_STR_CONTAINS(why, "no long form");
    CHECK(!patch(6, (void *)fixture_loop_into_head, (void *)fixture_empty));
    CHECK_STR_CONTAINS(why, "lands inside its first");
    /* Refused functions are left as they were. */
    CHECK_EQ(fixture_too_short(), 0);
    CHECK_EQ(fixture_jrcxz(), 1);
    CHECK_EQ(fixture_loop_into_head(5), 5);
}

static void test_empty_function_patched_over_its_padding(void)
{
    setup();
    /* The next function starts 16 bytes on: the patch (5 bytes) fits in the padding. */
    REQUIRE(hook_patch_empty_function((uintptr_t)fixture_empty, (uintptr_t)fixture_empty_end, 7,
                                      &resume_at[7], why, sizeof why));
    fixture_empty();
    fixture_empty();
    CHECK_EQ(entries[7], 2);
    /* A limit closer than the patch is refused. */
    CHECK(!hook_patch_empty_function((uintptr_t)fixture_empty_end, (uintptr_t)fixture_empty_end + 3, 8,
                                     &resume_at[8], why, sizeof why));
    CHECK_STR_CONTAINS(why, "another function starts");
    /* A function that is not a lone ret is refused. */
    CHECK(!hook_patch_empty_function((uintptr_t)fixture_callee, (uintptr_t)fixture_too_short, 9,
                                     &resume_at[9], why, sizeof why));
    CHECK_STR_CONTAINS(why, "not an empty function");
}

static void test_indirect_calls_return_into_the_function(void)
{
    setup();
    uintptr_t f = (uintptr_t)fixture_call_rip_memory;
    CHECK_EQ(fixture_call_rip_memory(), f + 6);
    REQUIRE(patch(10, (void *)fixture_call_rip_memory, (void *)fixture_call_register));
    CHECK_EQ(fixture_call_rip_memory(), f + 6);
    CHECK_EQ(entries[10], 1);

    f = (uintptr_t)fixture_call_register;
    CHECK_EQ(fixture_call_register(fixture_return_address), f + 5);
    REQUIRE(patch(11, (void *)fixture_call_register, (void *)fixture_call_stack));
    CHECK_EQ(fixture_call_register(fixture_return_address), f + 5);
    CHECK_EQ(entries[11], 1);

    f = (uintptr_t)fixture_call_stack;
    CHECK_EQ(fixture_call_stack(fixture_return_address), f + 6);
    REQUIRE(patch(12, (void *)fixture_call_stack, (void *)fixture_call_stack_top));
    CHECK_EQ(fixture_call_stack(fixture_return_address), f + 6);
    CHECK_EQ(entries[12], 1);

    f = (uintptr_t)fixture_call_stack_top;
    CHECK_EQ(fixture_call_stack_top(fixture_return_address), f + 7);
    REQUIRE(patch(13, (void *)fixture_call_stack_top, (void *)fixture_call_early));
    CHECK_EQ(fixture_call_stack_top(fixture_return_address), f + 7);
    CHECK_EQ(entries[13], 1);

    CHECK(!patch(14, (void *)fixture_call_early, (void *)fixture_calls_end));
    CHECK_STR_CONTAINS(why, "too short: it calls within");
    CHECK_EQ(fixture_call_early(fixture_return_address), (uintptr_t)fixture_call_early + 2);
}

static const struct test_case cases[] = {
    TEST_CASE(endbr_stays_and_mov_moves),
    TEST_CASE(rip_relative_load_is_rewritten),
    TEST_CASE(short_conditional_jump_is_relocated),
    TEST_CASE(call_first_returns_into_the_function),
    TEST_CASE(refusals_name_the_reason),
    TEST_CASE(empty_function_patched_over_its_padding),
    TEST_CASE(indirect_calls_return_into_the_function),
};

int main(int argc, char **argv)
{
    return check_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
