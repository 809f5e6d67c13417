/*
 * malloc_shim.c — the exported malloc family and where each call goes.
 *
 * Layer: preload, shim.  Every function glibc's manual asks a replacement malloc to provide, plus
 * the __libc_* aliases some programs call directly.  Routing:
 *
 *   allocation   the calling thread's innermost region (unless the immediate caller lies in
 *                an excluded module), else jemalloc (its own malloc family, found at start-up);
 *   free/realloc by address alone: the chunk reservation is one range, so objects freed by
 *                another thread, or after their region, go to the right owner.
 *
 * Outside regions the added cost is one TLS load (malloc) or one range check (free).  Every
 * failure returns NULL with errno ENOMEM, free keeps errno, and zero sizes, overflow and
 * alignment checks behave as glibc documents, whatever jemalloc does underneath.
 */
#include "shim.h"

#include "alloc_trace.h"
#include "caller_filter.h"
#include "dangling.h"
#include "discover.h"
#include "log.h"
#include "proc.h"

#include <dlfcn.h>
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <string.h>
#include <unistd.h>

#define RETURN_ADDRESS() __builtin_return_address(0)

/* --- the heap (jemalloc) ------------------------------------------------------------------ */

/* jemalloc's own malloc/free/calloc/realloc are its fastest paths (about 30 instructions
 * against 90 for mallocx/dallocx, measured with callgrind in bench/).  Our exports shadow
 * them, so they are looked up in jemalloc's own scope once the dynamic linker is usable;
 * until then the non-standard API serves. */
static void *bootstrap_malloc(size_t size)
{
    return mallocx(size ? size : 1, 0);
}

static void bootstrap_free(void *p)
{
    if (p)
        dallocx(p, 0);
}

static void *bootstrap_calloc(size_t count, size_t size)
{
    size_t bytes = count * size; /* the caller checked for overflow */
    return mallocx(bytes ? bytes : 1, MALLOCX_ZERO);
}

static void *bootstrap_realloc(void *p, size_t size)
{
    return p ? rallocx(p, size ? size : 1, 0) : mallocx(size ? size : 1, 0);
}

static struct {
    void *(*malloc)(size_t);
    void (*free)(void *);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
} heap = { bootstrap_malloc, bootstrap_free, bootstrap_calloc, bootstrap_realloc };

void shim_heap_init(void)
{
    void *jemalloc = dlopen("libjemalloc.so.2", RTLD_NOW | RTLD_NOLOAD);
    if (jemalloc == NULL)
        return;
    void *m = dlsym(jemalloc, "malloc"), *f = dlsym(jemalloc, "free");
    void *c = dlsym(jemalloc, "calloc"), *r = dlsym(jemalloc, "realloc");
    /* Never our own exports: that would recurse. */
    if (m && f && c && r && m != (void *)malloc && f != (void *)free) {
        heap.calloc = (void *(*)(size_t, size_t))c;
        heap.realloc = (void *(*)(void *, size_t))r;
        heap.free = (void (*)(void *))f;
        __atomic_store_n(&heap.malloc, (void *(*)(size_t))m, __ATOMIC_RELEASE);
    }
    dlclose(jemalloc);
}

/* discover=N: the heap's four functions, wrapped so that discovery sees allocations and
 * frees (hook/discover.c); a region allocation is not the heap's and is not followed. */
static struct {
    void *(*malloc)(size_t);
    void (*free)(void *);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
} unwrapped;

static void *discovered_malloc(size_t size)
{
    void *p = unwrapped.malloc(size);
    discover_allocated(p, size);
    return p;
}

static void discovered_free(void *p)
{
    discover_freeing(p);
    unwrapped.free(p);
}

static void *discovered_calloc(size_t count, size_t size)
{
    void *p = unwrapped.calloc(count, size);
    discover_allocated(p, count * size);
    return p;
}

static void *discovered_realloc(void *p, size_t size)
{
    /* The old object ends here (a free, for its escapes); the new one may be followed. */
    discover_freeing(p);
    void *q = unwrapped.realloc(p, size);
    discover_allocated(q, size);
    return q;
}

void shim_heap_follow_for_discovery(void)
{
    unwrapped.malloc = heap.malloc;
    unwrapped.free = heap.free;
    unwrapped.calloc = heap.calloc;
    unwrapped.realloc = heap.realloc;
    heap.free = discovered_free;
    heap.calloc = discovered_calloc;
    heap.realloc = discovered_realloc;
    __atomic_store_n(&heap.malloc, discovered_malloc, __ATOMIC_RELEASE);
}

/* A thread whose first call into jemalloc is a free gets a minimal thread state, completed
 * later by whatever fetches it.  With our wrappers on the arenas' extent hooks
 * (collect/heap_ranges.c), that can be jemalloc's default merge or split hook called from
 * that very free with an extent lock held: completing the state allocates the thread's cache
 * and takes the lock again, and the thread waits for itself for ever (Python's
 * test_faulthandler: a C thread whose one heap call frees the main thread's alternate signal
 * stack).  So the first free of a thread that has not allocated from the heap yet is preceded
 * by an allocation, which completes the state before any lock is held.  Every allocation
 * notes the thread (a store), so that a thread exiting (glibc frees its own buffers after
 * jemalloc has let go of the thread's state) never allocates again. */
static __thread bool heap_thread_started;

static __attribute__((noinline)) void heap_thread_start(void)
{
    heap_thread_started = true;
    heap.free(heap.malloc(1));
}

/* jemalloc's malloc sets errno to ENOMEM itself (the bootstrap path before start-up may
 * not, but nothing that early runs out of memory): a tail call, no frame. */
static inline void *heap_alloc(size_t size)
{
    heap_thread_started = true;
    return heap.malloc(size);
}

static inline void *heap_alloc_aligned(size_t size, size_t alignment)
{
    /* jemalloc's malloc aligns small size classes only to 8 bytes. */
    if (alignment <= 8)
        return heap_alloc(size);
    heap_thread_started = true;
    void *p = mallocx(size ? size : 1, MALLOCX_ALIGN(alignment));
    if (unlikely(p == NULL))
        errno = ENOMEM;
    return p;
}

static inline void *heap_calloc(size_t size)
{
    heap_thread_started = true;
    return heap.calloc(1, size);
}

static inline void heap_free(void *p)
{
    if (unlikely(!heap_thread_started) && p != NULL)
        heap_thread_start();
    heap.free(p);
}

void *shim_fallback_alloc(size_t size, size_t alignment)
{
    static int warned;
    stats_add(&core_counters.fallback_allocs, 1);
    if (core_counters.reserve_exhausted && !__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED)) {
        int refused = __atomic_load_n(&chunk_refusal_errno, __ATOMIC_RELAXED);
        if (refused != 0) {
            unsigned long mappings = proc_count_mappings(), limit = proc_max_map_count();
            /* Far from the mapping limit, ENOMEM means memory: commit charge under
             * vm.overcommit_memory=2, a cgroup, or a filter that makes the call fail. */
            bool near_limit = limit == 0 || mappings + mappings / 8 >= limit;
            log_warn("the kernel refused chunk memory (mprotect: %s, with %lu mappings of at most "
                     "vm.max_map_count %lu%s); region allocations fall back to the heap",
                     strerror(refused), mappings, limit,
                     near_limit ? "" : ": not the mapping limit, so out of memory or commit charge");
        }
        else
            log_warn("the chunk reservation is exhausted; region allocations fall back to the heap "
                     "(raise ARENASHIM_OPTIONS=reserve=...)");
    }
    return heap_alloc_aligned(size, alignment);
}

/* --- routing ------------------------------------------------------------------------------- */

/* A region could not serve a request: one no allocator can serve fails with ENOMEM, the rest
 * go to the heap (reservation exhausted, or an alignment beyond a chunk). */
static void *region_miss(size_t size, size_t alignment)
{
    if (size > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    return shim_fallback_alloc(size, alignment);
}

/* An allocation on a thread with an open region, made from caller. */
static inline void *routed_alloc(struct region *region, size_t size, const void *caller)
{
    if (unlikely(caller_is_excluded(caller)))
        return heap_alloc(size);
    void *p = region_alloc(region, size);
    if (unlikely(p == NULL))
        return region_miss(size, OBJECT_ALIGN);
    alloc_trace_maybe(region, p, size);
    return p;
}

static void *routed_alloc_aligned(size_t size, size_t alignment, const void *caller)
{
    struct region *region = bound_region;
    if (region == NULL || caller_is_excluded(caller))
        return heap_alloc_aligned(size, alignment);
    void *p = region_alloc_aligned(region, size, alignment);
    if (unlikely(p == NULL))
        return region_miss(size, alignment);
    alloc_trace_maybe(region, p, size);
    return p;
}

static inline bool multiply_overflows(size_t a, size_t b, size_t *product)
{
    return __builtin_mul_overflow(a, b, product);
}

/* --- the exported family ------------------------------------------------------------------ */

__attribute__((noinline)) static void *malloc_in_region(struct region *region, size_t size,
                                                        const void *caller)
{
    return routed_alloc(region, size, caller);
}

EXPORTED void *malloc(size_t size)
{
    struct region *region = bound_region;
    if (likely(region == NULL))
        return heap_alloc(size);
    /* The common region case without a stack frame: a caller outside the excluded
     * modules, a bump that fits, no sample due.  Anything else takes the full path. */
    const void *caller = RETURN_ADDRESS();
    if (likely(!caller_is_excluded(caller))) {
        void *p = region_try_alloc(region, size);
        if (likely(p != NULL)) {
            if (unlikely(alloc_trace_due(region)))
                return alloc_trace_sampled(region, p, size);
            return p;
        }
    }
    return malloc_in_region(region, size, caller);
}

/* free() of a region object beyond the cheap cases (core.h, region_free_fast): counted, and,
 * the first time after its region ended, reported (verbose). */
__attribute__((noinline)) static void free_region_object(void *p)
{
    if (region_free_slow(bound_thread, p))
        report_escaped_free((uintptr_t)p);
}

EXPORTED void free(void *p)
{
    if (likely(!core_owns(p))) {
        heap_free(p);
        return;
    }
    struct region *region = bound_region;
    if (likely(region != NULL) && region_free_fast(region, p))
        return;
    free_region_object(p);
}

EXPORTED void *calloc(size_t count, size_t size)
{
    size_t bytes;
    if (unlikely(multiply_overflows(count, size, &bytes))) {
        errno = ENOMEM;
        return NULL;
    }
    struct region *region = bound_region;
    if (likely(region == NULL))
        return heap_calloc(bytes);
    const void *caller = RETURN_ADDRESS();
    if (caller_is_excluded(caller))
        return heap_calloc(bytes);
    void *p = region_alloc(region, bytes);
    if (unlikely(p == NULL)) {
        p = region_miss(bytes, OBJECT_ALIGN);
        if (p)
            memset(p, 0, bytes);
        return p;
    }
    region_clear_reused(region, p, bytes);
    alloc_trace_maybe(region, p, bytes);
    return p;
}

/* realloc of a region object: in place when it is its region's last object, else moved to
 * wherever the caller allocates now.  Reading its size faults when its region has ended:
 * realloc of a dead object is a dangling access and is reported as one. */
static void *region_realloc(void *p, size_t size, const void *caller)
{
    size_t old_size = region_object_size(p);
    if (size == 0) {
        free(p);
        return NULL;
    }
    if (region_resize_in_place(bound_region, p, size))
        return p;
    if (size <= old_size)
        return p;
    struct region *region = bound_region;
    void *q = region ? routed_alloc(region, size, caller) : heap_alloc(size);
    if (q == NULL)
        return NULL;
    memcpy(q, p, old_size);
    free(p);
    return q;
}

/* realloc's work for any owner, with the caller that decides a new object's home. */
static void *reallocate(void *p, size_t size, const void *caller)
{
    if (p == NULL) {
        struct region *region = bound_region;
        return region ? routed_alloc(region, size, caller) : heap_alloc(size);
    }
    if (core_owns(p))
        return region_realloc(p, size, caller);
    if (size == 0) {
        /* glibc frees and returns NULL. */
        heap_free(p);
        return NULL;
    }
    heap_thread_started = true;
    void *q = heap.realloc(p, size);
    if (unlikely(q == NULL))
        errno = ENOMEM;
    return q;
}

EXPORTED void *realloc(void *p, size_t size)
{
    return reallocate(p, size, RETURN_ADDRESS());
}

EXPORTED void *reallocarray(void *p, size_t count, size_t size)
{
    size_t bytes;
    if (multiply_overflows(count, size, &bytes)) {
        errno = ENOMEM;
        return NULL;
    }
    return reallocate(p, bytes, RETURN_ADDRESS());
}

static inline bool is_power_of_two(size_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

EXPORTED void *aligned_alloc(size_t alignment, size_t size)
{
    if (!is_power_of_two(alignment)) {
        errno = EINVAL;
        return NULL;
    }
    return routed_alloc_aligned(size, alignment, RETURN_ADDRESS());
}

EXPORTED int posix_memalign(void **out, size_t alignment, size_t size)
{
    if (!is_power_of_two(alignment) || alignment % sizeof(void *) != 0)
        return EINVAL;
    int saved = errno;
    void *p = routed_alloc_aligned(size, alignment, RETURN_ADDRESS());
    errno = saved;
    if (p == NULL)
        return ENOMEM;
    *out = p;
    return 0;
}

/* glibc's memalign rounds an alignment that is not a power of two up to the next one. */
static void *memalign_from(size_t alignment, size_t size, const void *caller)
{
    if (alignment > ((size_t)1 << 63)) {
        errno = EINVAL;
        return NULL;
    }
    if (alignment < OBJECT_ALIGN)
        alignment = OBJECT_ALIGN;
    if (!is_power_of_two(alignment))
        alignment = (size_t)1 << (64 - __builtin_clzll((unsigned long long)alignment));
    return routed_alloc_aligned(size, alignment, caller);
}

EXPORTED void *memalign(size_t alignment, size_t size)
{
    return memalign_from(alignment, size, RETURN_ADDRESS());
}

EXPORTED void *valloc(size_t size)
{
    return memalign_from(PAGE_SIZE_BYTES, size, RETURN_ADDRESS());
}

EXPORTED void *pvalloc(size_t size)
{
    if (size > SIZE_MAX - PAGE_SIZE_BYTES) {
        errno = ENOMEM;
        return NULL;
    }
    size_t rounded = size ? align_up(size, PAGE_SIZE_BYTES) : PAGE_SIZE_BYTES;
    return memalign_from(PAGE_SIZE_BYTES, rounded, RETURN_ADDRESS());
}

EXPORTED size_t malloc_usable_size(void *p)
{
    if (p == NULL)
        return 0;
    if (core_owns(p))
        return region_object_size(p);
    return sallocx(p, 0);
}

/* Callers of strdup own the copy: serve it like the caller's own malloc, not as a C library
 * allocation (which the default exclude list sends to the heap). */
EXPORTED char *strdup(const char *s)
{
    size_t len = strlen(s) + 1;
    struct region *region = bound_region;
    char *copy = region ? routed_alloc(region, len, RETURN_ADDRESS()) : heap_alloc(len);
    if (copy)
        memcpy(copy, s, len);
    return copy;
}

EXPORTED char *strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    struct region *region = bound_region;
    char *copy = region ? routed_alloc(region, len + 1, RETURN_ADDRESS()) : heap_alloc(len + 1);
    if (copy) {
        memcpy(copy, s, len);
        copy[len] = '\0';
    }
    return copy;
}

/* Programs that call glibc's internal names directly must reach the same allocator, or a
 * pointer from one would be freed by the other. */
EXPORTED void *__libc_malloc(size_t size) __attribute__((alias("malloc"), copy(malloc)));
EXPORTED void __libc_free(void *p) __attribute__((alias("free"), copy(free)));
EXPORTED void *__libc_calloc(size_t count, size_t size) __attribute__((alias("calloc"), copy(calloc)));
EXPORTED void *__libc_realloc(void *p, size_t size) __attribute__((alias("realloc"), copy(realloc)));
EXPORTED void *__libc_memalign(size_t alignment, size_t size) __attribute__((alias("memalign"), copy(memalign)));
EXPORTED void *__libc_valloc(size_t size) __attribute__((alias("valloc"), copy(valloc)));
EXPORTED void *__libc_pvalloc(size_t size) __attribute__((alias("pvalloc"), copy(pvalloc)));
