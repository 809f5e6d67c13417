/*
 * stubs.S — the entry and exit stubs of hooked functions.
 *
 * Layer: preload, arch (x86-64).  See hook/hook.h for the lifecycle, arch/arch.h for the
 * interface.
 *
 * arenashim_hook_entry is jumped to by a hook's trampoline with the hook index pushed on
 * top of the hooked function's return address.  It saves the integer argument registers
 * (rax carries the vector-register count of variadic calls, r10 the static chain), calls
 * hook_enter_fast, and if that asks for the slow path calls hook_enter_slow inside a full
 * XSAVE/XRSTOR, so no argument register of any width is changed.  It then jumps to the
 * address returned: the hook's relocated first instructions.
 *
 * arenashim_exit_stub is where a hooked function returns to.  It keeps rax, rdx, xmm0 and
 * xmm1 (the return registers the fast path could disturb), asks hook_exit_fast for the real
 * return address, falling back to hook_exit_slow under XSAVE (which keeps x87 st0/st1 and
 * the upper halves of vector registers too), and returns there.
 */
    .text

/* Calls \function(rdi, rsi) with the whole extended state saved; result in rax. */
.macro CALL_WITH_FULL_STATE function
    push %rbx
    push %rbp
    mov %rsp, %rbp
    mov %rdi, %rbx
    sub arenashim_xsave_size(%rip), %rsp
    and $-64, %rsp
    /* The XSAVE header (bytes 512..575) must be zero for XRSTOR to accept the image. */
    xor %eax, %eax
    mov %rax, 512(%rsp)
    mov %rax, 520(%rsp)
    mov %rax, 528(%rsp)
    mov %rax, 536(%rsp)
    mov %rax, 544(%rsp)
    mov %rax, 552(%rsp)
    mov %rax, 560(%rsp)
    mov %rax, 568(%rsp)
    mov $-1, %eax
    mov $-1, %edx
    xsave (%rsp)
    mov %rbx, %rdi
    call \function
    mov %rax, %rbx
    mov $-1, %eax
    mov $-1, %edx
    xrstor (%rsp)
    mov %rbx, %rax
    mov %rbp, %rsp
    pop %rbp
    pop %rbx
.endm

    .globl arenashim_hook_entry
    .hidden arenashim_hook_entry
    .type arenashim_hook_entry, @function
arenashim_hook_entry:
    .cfi_startproc
    /* [rsp] = hook index, [rsp+8] = return address.  rsp is 16-byte aligned here.  Every
     * register is given back: with interprocedural register allocation (-fipa-ra) a caller
     * may keep values in registers the ABI calls scratch across a call it knows leaves them
     * alone, so r11 survives too: the resume address is reached with a ret instead. */
    push %rax
    push %rdi
    push %rsi
    push %rdx
    push %rcx
    push %r8
    push %r9
    push %r10
    push %r11
    sub $8, %rsp
    mov 80(%rsp), %rdi
    lea 88(%rsp), %rsi
    call hook_enter_fast
    test %rax, %rax
    jnz 1f
    mov 80(%rsp), %rdi
    lea 88(%rsp), %rsi
    CALL_WITH_FULL_STATE hook_enter_slow
1:  mov %rax, 80(%rsp)      /* the hook index slot now holds the resume address */
    add $8, %rsp
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rcx
    pop %rdx
    pop %rsi
    pop %rdi
    pop %rax
    /* Drop the slot and jump through it, now just below the stack pointer: the hooked
     * function has not started, so nothing of its lives in its red zone yet, and an
     * indirect jump is predicted where a ret (whose return-stack entry is not this) is not. */
    add $8, %rsp
    jmp *-8(%rsp)
    .cfi_endproc
    .size arenashim_hook_entry, .-arenashim_hook_entry

    .globl arenashim_exit_stub
    .hidden arenashim_exit_stub
    .type arenashim_exit_stub, @function
    /* Never called: returned into.  The nop keeps the symbol from naming the instruction
     * before it in backtraces (unwinders look up return address - 1). */
    nop
arenashim_exit_stub:
    .cfi_startproc
    /* rsp = slot + 8, 16-byte aligned.  Re-open the slot for the real return address, and
     * keep every scratch register (see the entry stub) and the return registers. */
    sub $8, %rsp
    push %rax
    push %rdx
    push %rdi
    push %rsi
    push %rcx
    push %r8
    push %r9
    push %r10
    push %r11
    sub $40, %rsp
    movdqu %xmm0, (%rsp)
    movdqu %xmm1, 16(%rsp)
    lea 112(%rsp), %rdi
    call hook_exit_fast
    test %rax, %rax
    jnz 2f
    lea 112(%rsp), %rdi
    CALL_WITH_FULL_STATE hook_exit_slow
2:  mov %rax, 112(%rsp)
    movdqu (%rsp), %xmm0
    movdqu 16(%rsp), %xmm1
    add $40, %rsp
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rcx
    pop %rsi
    pop %rdi
    pop %rdx
    pop %rax
    /* As after a ret, with the real return address left where it was (an indirect jump,
     * for the branch predictor; the caller's frame below is free memory again). */
    add $8, %rsp
    jmp *-8(%rsp)
    .cfi_endproc
    .size arenashim_exit_stub, .-arenashim_exit_stub

    .section .note.GNU-stack, "", @progbits
