/*
 * unwind_guard.h — longjmp, C++ exceptions and backtraces across hooked frames.
 */
#ifndef ARENASHIM_PRELOAD_UNWIND_GUARD_H
#define ARENASHIM_PRELOAD_UNWIND_GUARD_H

#include <setjmp.h>
#include <stdint.h>

void unwind_guard_init(void);
/* Architecture-specific: the stack pointer a jmp_buf will restore. */
uintptr_t jmpbuf_stack_pointer(const struct __jmp_buf_tag *env);

#endif
