/*
 * scan.h — the conservative scan's data: quarantine snapshot, marks, and the word kernel.
 *
 * Layer: core.  A scan (1) snapshots the quarantine into a bitmap, (2) reads every root
 * word by word, marking quarantined chunks that some word points into, and (3) releases the
 * unmarked ones to the available set.  Step 2 happens with the world stopped (preload's
 * collector.c does the stopping); steps 1 and 3 take core.lock and run while it is not.
 * The bitmaps live in metadata, which the scan itself skips.
 */
#ifndef ARENASHIM_CORE_SCAN_H
#define ARENASHIM_CORE_SCAN_H

#include "internal.h"

enum referrer_kind {
    REFERRER_NONE = 0,
    REFERRER_STACK,      /* a thread's stack */
    REFERRER_REGISTERS,  /* a stopped thread's saved registers */
    REFERRER_MODULE,     /* .data/.bss of a module (file-backed private mapping) */
    REFERRER_ANONYMOUS,  /* an anonymous mapping: the heap, mmap'd buffers, thread-local data */
    REFERRER_SHARED,     /* anonymous shared memory */
    REFERRER_REGION,     /* a live region chunk */
    REFERRER_HEAP,       /* an anonymous mapping that is jemalloc's heap (named after the scan) */
};

/* What the scanner is reading now, so a mark can say where its pointer was found. */
struct scan_source {
    enum referrer_kind kind;
    uint32_t thread_number; /* stacks and registers: the thread's number, or tid */
    const char *name;       /* mapping name (module path), may be NULL */
};

#define SCAN_KEPT_MAX 64
struct scan_kept {
    uint32_t chunk;       /* head of the kept span */
    uintptr_t location;   /* where the pointer was found (0 for registers) */
    uintptr_t value;      /* the pointer */
    enum referrer_kind kind;
    uint32_t thread_number;
    char name[96];
};

struct scan_state {
    uint64_t *quarantined; /* snapshot: 1 = chunk is in quarantine (span heads and tails) */
    uint64_t *marked;
    size_t bitmap_words;
    uint64_t snapshot_chunks;
    uint64_t words_scanned;
    uint64_t marks;
    const struct scan_source *source;
    unsigned kept_count;
    struct scan_kept kept[SCAN_KEPT_MAX];
};

extern struct scan_state scan_state;

/* Step 1: under core.lock.  Returns the number of quarantined chunks (0: nothing to do). */
uint64_t scan_snapshot(void);
/* Step 2: read [start, end) (8-byte aligned inside) as candidate pointers. */
void scan_range(uintptr_t start, uintptr_t end, const struct scan_source *source);
/* Step 3: release every snapshot span none of whose chunks was marked; returns chunks released. */
uint64_t scan_release_unmarked(void);

/* The word kernel, chosen at start-up: scalar, or AVX2 where the CPU has it. */
typedef void (*scan_kernel_fn)(const uintptr_t *words, size_t count);
void scan_kernel_scalar(const uintptr_t *words, size_t count);
scan_kernel_fn scan_kernel_select(void);
/* The slow part of the kernel: a word that falls inside the reservation. */
void scan_candidate(const uintptr_t *location, uintptr_t value);

#endif
