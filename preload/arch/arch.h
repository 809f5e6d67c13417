/*
 * arch.h — what the preload needs from the architecture, behind one interface.
 *
 * Layer: preload, arch.  Implemented per architecture in arch/<name>/ (x86_64/ today:
 * patch.c, stubs.S, context.c); meson picks the folder.  Three things differ by
 * architecture:
 *
 *   patching   rewriting a function's entry to jump to a trampoline that enters the hooks
 *              (hook_patch), relocating the instructions it displaces; the entry and exit
 *              stubs that save every register around the hook's C code;
 *   contexts   a signal context's registers (for the scan), whether a fault was a write, the
 *              stack pointer a jmp_buf will restore (for longjmp), a context an unwinder can
 *              start from at a given pc and stack pointer;
 *   the stubs' callees, declared here and defined by hook/: hook_enter_fast/slow run at a
 *              hooked function's entry, hook_exit_fast/slow when it returns into the exit
 *              stub.  The *_fast ones return 0 to ask for the slow one, which the stubs run
 *              with the whole extended register state saved.
 */
#ifndef ARENASHIM_PRELOAD_ARCH_H
#define ARENASHIM_PRELOAD_ARCH_H

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --- patching (arch/<name>/patch.c) -------------------------------------------------------- */

/* Checks the CPU and kernel, loads the disassembler, installs the patching trap handler. */
bool hook_arch_init(char *why, size_t why_len);
/* Patches the function [start, end) (end == start: unknown size) to enter hook index; the
 * address where the displaced instructions resume is stored to *resume before the patch goes
 * live.  whole_module: check every direct branch of the module's text [text_start, text_end)
 * against the displaced bytes (else only the function's own).  On refusal returns false with
 * a reason in why. */
/* The module whose text starts there was unloaded: what was learnt of its code is dropped. */
void hook_patch_forget_module(uintptr_t text_start);
bool hook_patch(uintptr_t start, uintptr_t end, uintptr_t text_start, uintptr_t text_end,
                unsigned index, bool whole_module, uintptr_t *resume, char *why, size_t why_len);
/* The checks of hook_patch (whole module), without patching: could the function be hooked?
 * false with the reason it would be refused. */
bool hook_patch_check(uintptr_t start, uintptr_t end, uintptr_t text_start, uintptr_t text_end,
                      char *why, size_t why_len);
/* For tests (tests/unit/preload/test_relocate_libraries.c): what hook_patch would build for
 * the function, without patching anything.  Runs hook_patch's checks (whole module), then
 * writes the displaced instructions relocated, and the jump back after them, to buffer as if
 * it were the resuming part of a trampoline at buffer_address (at most buffer_len bytes, and
 * no more than a trampoline holds).  Gives the bytes displaced (after any endbr64) and the
 * bytes written; false with the reason hook_patch would refuse. */
bool hook_relocate_into(uintptr_t start, uintptr_t end, uintptr_t text_start, uintptr_t text_end,
                        uint8_t *buffer, size_t buffer_len, uintptr_t buffer_address,
                        size_t *displaced_bytes, size_t *written, char *why, size_t why_len);
/* Patches a function whose whole body is a return (after an optional endbr64) to enter hook
 * index before returning.  The patch covers alignment padding after it: the padding must
 * decode as no-ops and end no later than limit, where the next function starts. */
bool hook_patch_empty_function(uintptr_t start, uintptr_t limit, unsigned index, uintptr_t *resume,
                               char *why, size_t why_len);

/* The stubs (arch/<name>/stubs.S): a hooked call returns into arenashim_exit_stub. */
extern char arenashim_exit_stub[];
extern char arenashim_hook_entry[];

/* Called by the stubs; defined in hook/runtime.c and hook/shadow_stack.c. */
uintptr_t hook_enter_fast(uintptr_t index, uintptr_t *slot);
uintptr_t hook_enter_slow(uintptr_t index, uintptr_t *slot);
uintptr_t hook_exit_fast(uintptr_t *slot);
uintptr_t hook_exit_slow(uintptr_t *slot);

/* --- contexts (arch/<name>/context.c) ------------------------------------------------------ */

/* Copies a signal context's registers to out (at most max words), returns their count, and
 * gives the interrupted stack pointer. */
unsigned registers_from_context(const void *ucontext, uintptr_t *out, unsigned max,
                                uintptr_t *stack_pointer);
/* Was the faulting access of this signal context a write? */
bool context_fault_is_write(const void *ucontext);
/* Points a context an unwinder starts from (libunwind's unw_context_t is a ucontext_t here) at
 * pc with the given stack pointer. */
void context_set_pc_and_stack(void *ucontext, uintptr_t pc, uintptr_t stack_pointer);
/* The stack pointer a jmp_buf will restore. */
uintptr_t jmpbuf_stack_pointer(const struct __jmp_buf_tag *env);

#endif
