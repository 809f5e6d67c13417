/*
 * core_arch.h — what the core needs from the architecture: clocks, a spin hint, the name of
 * the dynamic loader.
 *
 * Layer: core, public (the public inlines use both).  The one place the core chooses by
 * architecture in a header; the scan's vectorised word kernel is chosen by meson among
 * core/arch/scan_kernel_*.c.  A new architecture adds its branch here.
 */
#ifndef ARENASHIM_CORE_ARCH_H
#define ARENASHIM_CORE_ARCH_H

#include <stdint.h>
#include <time.h>

/* A monotonic clock in nanoseconds (CLOCK_MONOTONIC: a vDSO call, no system call). */
static inline uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* For "time inside a region": the TSC on x86-64 (converted to seconds at exit against the
 * monotonic clock), the monotonic clock itself elsewhere. */
static inline uint64_t cycle_counter(void)
{
#if defined(__x86_64__)
    return __builtin_ia32_rdtsc();
#else
    return monotonic_ns();
#endif
}

/* The dynamic loader's file name, excluded from regions by default with the C library (its
 * buffers outlive any region). */
#if defined(__x86_64__)
#define ARCH_DYNAMIC_LOADER "ld-linux-x86-64.so.2"
#elif defined(__aarch64__)
#define ARCH_DYNAMIC_LOADER "ld-linux-aarch64.so.1"
#else
#define ARCH_DYNAMIC_LOADER "ld.so"
#endif

/* Inside a spin loop: let the sibling hyperthread run. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield" ::: "memory");
#else
    __asm__ volatile("" ::: "memory");
#endif
}

#endif
