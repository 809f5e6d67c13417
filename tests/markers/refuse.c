/*
 * refuse.c — functions that cannot be hooked safely, for the refusal tests.  Knows nothing
 * about arenashim.
 *
 *   short_fn    "xor %eax,%eax; ret" at -O2: 3 bytes, no room for a 5-byte jump
 *   loop_fn     a loop whose backward jump lands on byte 2, inside the bytes a hook displaces
 *   fine_fn     an ordinary function, marked alongside to show the others are refused alone
 */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) int short_fn(void)
{
    return 0;
}

int loop_fn(void);
__asm__(
    "    .text\n"
    "    .globl loop_fn\n"
    "    .type loop_fn, @function\n"
    "loop_fn:\n"
    "    .cfi_startproc\n"
    "    xor %eax, %eax\n"
    "1:  inc %eax\n"
    "    cmp $10, %eax\n"
    "    jl 1b\n"
    "    ret\n"
    "    .cfi_endproc\n"
    "    .size loop_fn, .-loop_fn\n");

__attribute__((noinline, noclone)) long fine_fn(int n)
{
    long *p = malloc(sizeof(long) * (size_t)(n + 1));
    if (p == NULL)
        abort();
    for (int i = 0; i <= n; i++)
        p[i] = i;
    long s = 0;
    for (int i = 0; i <= n; i++)
        s += p[i];
    return s;
}

int main(void)
{
    int (*volatile s)(void) = short_fn;
    int (*volatile l)(void) = loop_fn;
    printf("short=%d loop=%d fine=%ld\n", s(), l(), fine_fn(10));
    return 0;
}
