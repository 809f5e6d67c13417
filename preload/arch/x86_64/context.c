/*
 * context.c — signal contexts and jmp_bufs on x86-64.
 *
 * Layer: preload, arch (x86-64).  A pointer may live only in a register (a callee-saved one
 * across a system call, or an SSE register in the middle of a memcpy), so the scan reads the
 * general registers and the whole FXSAVE area of every stopped thread.
 */
#include "arch.h"

#include <string.h>
#include <ucontext.h>

unsigned registers_from_context(const void *context, uintptr_t *out, unsigned max,
                                uintptr_t *stack_pointer)
{
    const ucontext_t *uc = context;
    unsigned count = 0;
    for (unsigned i = 0; i < NGREG && count < max; i++)
        out[count++] = (uintptr_t)uc->uc_mcontext.gregs[i];
    *stack_pointer = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    if (uc->uc_mcontext.fpregs) {
        /* The 512-byte FXSAVE image: x87 and XMM registers. */
        unsigned words = (unsigned)(sizeof(*uc->uc_mcontext.fpregs) / sizeof(uintptr_t));
        if (words > max - count)
            words = max - count;
        memcpy(out + count, uc->uc_mcontext.fpregs, words * sizeof(uintptr_t));
        count += words;
    }
    return count;
}

bool context_fault_is_write(const void *context)
{
    /* The page-fault error code: bit 1 is set for a write. */
    return (((const ucontext_t *)context)->uc_mcontext.gregs[REG_ERR] & 2) != 0;
}

void context_set_pc_and_stack(void *context, uintptr_t pc, uintptr_t stack_pointer)
{
    ucontext_t *uc = context;
    uc->uc_mcontext.gregs[REG_RIP] = (greg_t)pc;
    uc->uc_mcontext.gregs[REG_RSP] = (greg_t)stack_pointer;
}

/* glibc keeps rsp in __jmpbuf[6], mangled: rotated left by 17 bits after an XOR with the
 * pointer guard, which lives at %fs:0x30 in the thread control block. */
uintptr_t jmpbuf_stack_pointer(const struct __jmp_buf_tag *env)
{
    uintptr_t mangled = (uintptr_t)env->__jmpbuf[6], guard;
    __asm__("mov %%fs:0x30, %0" : "=r"(guard));
    uintptr_t rotated = (mangled >> 17) | (mangled << (64 - 17));
    return rotated ^ guard;
}
