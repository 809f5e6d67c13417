/* A library with a thread-local variable, dlopen'ed by hide.c (mode dlopen_tls). */
#include <stdint.h>

__thread volatile uintptr_t scan_tls_lib_slot[4];

void scan_tls_lib_set(uintptr_t value)
{
    scan_tls_lib_slot[1] = value;
}

uintptr_t scan_tls_lib_get(void)
{
    return scan_tls_lib_slot[1];
}
