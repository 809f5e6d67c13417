/*
 * discover.c — which functions would make good regions: following sampled heap allocations.
 *
 * Layer: preload, hook.  With discover=N (scripts/arenashim discover), one heap allocation in
 * N on each thread is followed; no region is opened.  Lifecycle:
 *
 *   sample  the allocating thread's stack is walked (libunwind, with the real return
 *           addresses of followed frames put back for the walk).  Every frame not followed
 *           yet is followed from now on: its return address is hijacked (the hooks' exit stub,
 *           a HOOK_WATCH shadow entry inserted in depth order) and the call gets an invocation
 *           number.  The object is remembered with, for each function on its stack, the
 *           invocation of that function's outermost frame: where a region would start.
 *   return  a followed call returns through the exit stub (hook_exit_slow), or is left by
 *           longjmp or an exception (unwind_guard.c): its invocation is marked returned.
 *   free    a remembered object is freed: for each function on its stack it *escaped* when
 *           that function's invocation had returned, or when another thread frees it.  A
 *           region around the function would have ended before the free: a dangling free.
 *   exit    objects never freed count as leaked, reclaimed by a region (not escapes).  Per
 *           function: calls followed, objects and bytes, escapes with their allocation sites,
 *           leaks, its depth from the outermost frame, and whether a marker on it would be
 *           hooked (the marker layer's checks, no patch) go to discover_json.
 *
 * A call is counted when a sampled allocation happens inside it: calls that allocate little
 * are undercounted at large N (the script says so).  Everything here is off the fast paths:
 * the heap wrappers count down per thread, and the free wrapper asks a lock-free table.
 * Signals are blocked while a thread samples (it edits its shadow stack).
 */
#include "discover.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <sys/auxv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hook.h"
#include "log.h"
#include "markers.h"
#include "report.h"
#include "symbolize.h"
#include "text.h"

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#define FRAMES_MAX 128
#define FUNCTIONS_MAX ((uint32_t)1 << 16)        /* distinct functions seen on stacks */
#define INVOCATIONS_MAX ((uint64_t)1 << 26)      /* followed calls */
#define OBJECT_SLOTS ((size_t)1 << 21)           /* the table of followed objects (a power of two) */
#define OBJECTS_LIVE_MAX (OBJECT_SLOTS / 4)
#define FILTER_BUCKETS ((size_t)1 << 16)          /* counts of followed objects by hash (the top 16 bits): 128 KiB */
#define ESCAPE_SITES 6
#define HOOKABILITY_CHECKS 200                   /* the best candidates get the marker checks */
#define JSON_BYTES ((size_t)16 << 20)

#define SLOT_EMPTY 0
#define SLOT_TOMBSTONE 1

struct escape_site {
    uint32_t stack; /* stack_table id of the allocation */
    uint32_t objects;
};

struct function_stats {
    uintptr_t start;                /* 0: free slot of the hash table */
    uint64_t calls;                 /* followed invocations */
    uint64_t objects, bytes;        /* sampled objects allocated inside a call of it */
    uint64_t escaped, escaped_bytes, other_thread;
    uint64_t leaked, leaked_bytes;
    uint64_t depth_sum;             /* its distance from the outermost frame, over its objects */
    struct escape_site sites[ESCAPE_SITES];
};

struct followed_function {
    uint32_t function; /* index in the function table */
    uint32_t depth;    /* frames between it and the outermost one */
    uint64_t invocation;
};

struct followed_object {
    uint64_t size;
    pid_t thread;
    uint32_t stack;
    uint32_t count;
    struct followed_function functions[];
};

struct object_slot {
    uintptr_t address; /* SLOT_EMPTY, SLOT_TOMBSTONE or the object */
    struct followed_object *object;
};

static struct {
    bool on;
    uint64_t period;
    unsigned watch_hook; /* the HOOK_WATCH entry of hook_table */
    uintptr_t self_start, self_end; /* libarenashim's mapped segments: its frames are not the program's */
    spin_lock lock;      /* the tables below (sampling, frees of followed objects, exit) */
    struct function_stats *functions;
    uint32_t function_count;
    uint32_t *invocation_function;
    uint64_t *returned; /* bitmap, one bit per invocation (atomic) */
    uint64_t next_invocation;
    struct object_slot *objects;
    /* Every free asks whether its object is followed; the table is 32 MiB and a probe misses
     * the cache.  These counters (followed objects per bucket of the hash's top bits) stay in
     * L2 and answer "no" for almost every free without touching the table. */
    uint16_t *filter;
    size_t live_objects;
    uint64_t sampled, sampled_bytes, dropped;
    uint64_t cycles; /* spent sampling and accounting */
    char *json;
} discover = { .lock = SPIN_LOCK_INIT };

static __thread uint64_t countdown TLS_INITIAL_EXEC;
static __thread bool busy TLS_INITIAL_EXEC;
static __thread pid_t thread_id TLS_INITIAL_EXEC;

/* --- tables ------------------------------------------------------------------------------- */

static size_t hash_address(uintptr_t address)
{
    uint64_t h = (uint64_t)address * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 20);
}

static uint16_t *filter_bucket(uintptr_t address)
{
    uint64_t h = (uint64_t)address * 0x9e3779b97f4a7c15ull;
    return &discover.filter[h >> 48];
}

/* Under the lock.  A saturated bucket stays saturated: it only costs lookups. */
static void filter_add(uintptr_t address)
{
    uint16_t *bucket = filter_bucket(address);
    uint16_t count = *bucket;
    if (count != UINT16_MAX)
        __atomic_store_n(bucket, (uint16_t)(count + 1), __ATOMIC_RELEASE);
}

static void filter_remove(uintptr_t address)
{
    uint16_t *bucket = filter_bucket(address);
    uint16_t count = *bucket;
    if (count != UINT16_MAX && count != 0)
        __atomic_store_n(bucket, (uint16_t)(count - 1), __ATOMIC_RELAXED);
}

/* The function table's index of start, inserting it; UINT32_MAX when full.  Under the lock. */
static uint32_t function_index(uintptr_t start)
{
    size_t mask = FUNCTIONS_MAX - 1;
    for (size_t i = hash_address(start) & mask, probes = 0; probes < FUNCTIONS_MAX; i = (i + 1) & mask, probes++) {
        struct function_stats *f = &discover.functions[i];
        if (f->start == start)
            return (uint32_t)i;
        if (f->start == 0) {
            if (discover.function_count >= FUNCTIONS_MAX * 3 / 4)
                return UINT32_MAX;
            f->start = start;
            discover.function_count++;
            return (uint32_t)i;
        }
    }
    return UINT32_MAX;
}

static bool invocation_returned(uint64_t invocation)
{
    return (__atomic_load_n(&discover.returned[invocation >> 6], __ATOMIC_RELAXED) >> (invocation & 63)) & 1;
}

void discover_call_returned(uint64_t invocation)
{
    if (invocation < INVOCATIONS_MAX)
        __atomic_fetch_or(&discover.returned[invocation >> 6], (uint64_t)1 << (invocation & 63),
                          __ATOMIC_RELAXED);
}

/* Lock-free: an object is inserted before malloc returns it, so no free can race its insertion. */
static struct object_slot *object_slot_of(uintptr_t address)
{
    size_t mask = OBJECT_SLOTS - 1;
    for (size_t i = hash_address(address) & mask, probes = 0; probes < OBJECT_SLOTS; i = (i + 1) & mask, probes++) {
        uintptr_t key = __atomic_load_n(&discover.objects[i].address, __ATOMIC_ACQUIRE);
        if (key == address)
            return &discover.objects[i];
        if (key == SLOT_EMPTY)
            return NULL;
    }
    return NULL;
}

/* Under the lock. */
static bool object_insert(uintptr_t address, struct followed_object *object)
{
    if (discover.live_objects >= OBJECTS_LIVE_MAX)
        return false;
    size_t mask = OBJECT_SLOTS - 1;
    struct object_slot *reuse = NULL;
    for (size_t i = hash_address(address) & mask, probes = 0; probes < OBJECT_SLOTS; i = (i + 1) & mask, probes++) {
        struct object_slot *slot = &discover.objects[i];
        uintptr_t key = slot->address;
        if (key == SLOT_TOMBSTONE && reuse == NULL)
            reuse = slot;
        if (key == address)
            return false; /* followed already: jemalloc reused it without our free seeing it */
        if (key == SLOT_EMPTY) {
            if (reuse == NULL)
                reuse = slot;
            break;
        }
    }
    if (reuse == NULL)
        return false;
    reuse->object = object;
    __atomic_store_n(&reuse->address, address, __ATOMIC_RELEASE);
    filter_add(address);
    discover.live_objects++;
    return true;
}

/* --- accounting ------------------------------------------------------------------------------ */

static void note_site(struct function_stats *f, uint32_t stack)
{
    if (stack == 0)
        return;
    unsigned least = 0;
    for (unsigned i = 0; i < ESCAPE_SITES; i++) {
        if (f->sites[i].stack == stack) {
            f->sites[i].objects++;
            return;
        }
        if (f->sites[i].objects < f->sites[least].objects)
            least = i;
    }
    /* A new site replaces the rarest (a small, approximate top list). */
    f->sites[least].stack = stack;
    f->sites[least].objects = 1;
}

/* An object's end: freed (by which thread), or still allocated at exit.  Under the lock. */
static void account(const struct followed_object *object, bool freed, pid_t by)
{
    for (uint32_t i = 0; i < object->count; i++) {
        const struct followed_function *ff = &object->functions[i];
        struct function_stats *f = &discover.functions[ff->function];
        f->objects++;
        f->bytes += object->size;
        f->depth_sum += ff->depth;
        if (!freed) {
            f->leaked++;
            f->leaked_bytes += object->size;
            continue;
        }
        bool other_thread = by != object->thread;
        if (other_thread || invocation_returned(ff->invocation)) {
            f->escaped++;
            f->escaped_bytes += object->size;
            f->other_thread += other_thread;
            note_site(f, object->stack);
        }
    }
}

/* --- following a sample ---------------------------------------------------------------------- */

/* A frame: where it is (ip, for a caller the return address), its function's first byte,
 * and cfa: the stack pointer just above the return address into it, so that the return
 * address of frame k (into frame k + 1) lives at frames[k + 1].cfa - 8 on x86-64.  That is
 * libgcc's _Unwind_GetCFA, and libunwind's UNW_REG_SP, for the same frame. */
struct frame {
    uintptr_t ip, cfa, function;
};

/* The walk: libgcc's unwinder, which finds frame descriptions through _dl_find_object
 * without a lock or a system call; libunwind's local walk (a sigprocmask around every FDE
 * search: ten times slower here) where libgcc_s cannot be loaded. */
struct unwind_context;
static struct {
    int (*backtrace)(int (*)(struct unwind_context *, void *), void *);
    uintptr_t (*ip)(struct unwind_context *);
    uintptr_t (*cfa)(struct unwind_context *);
    uintptr_t (*region_start)(struct unwind_context *);
} libgcc;

struct frame_list {
    struct frame *frames;
    unsigned count, max;
};

static int note_frame(struct unwind_context *context, void *data)
{
    struct frame_list *list = data;
    if (list->count == list->max)
        return 5; /* _URC_END_OF_STACK: stop */
    struct frame *f = &list->frames[list->count++];
    f->ip = libgcc.ip(context);
    f->cfa = libgcc.cfa(context);
    f->function = libgcc.region_start(context);
    return 0; /* _URC_NO_REASON */
}

static unsigned walk_stack(struct frame *frames, unsigned max)
{
    if (libgcc.backtrace) {
        struct frame_list list = { frames, 0, max };
        libgcc.backtrace(note_frame, &list);
        return list.count;
    }
    unw_context_t context;
    unw_cursor_t cursor;
    unw_getcontext(&context);
    if (unw_init_local(&cursor, &context) != 0)
        return 0;
    unsigned n = 0;
    do {
        unw_word_t ip = 0, sp = 0;
        unw_proc_info_t info;
        unw_get_reg(&cursor, UNW_REG_IP, &ip);
        unw_get_reg(&cursor, UNW_REG_SP, &sp);
        frames[n].ip = ip;
        frames[n].cfa = sp;
        frames[n].function = unw_get_proc_info(&cursor, &info) == 0 ? info.start_ip : 0;
        n++;
    } while (n < max && unw_step(&cursor) > 0);
    return n;
}

static void load_libgcc_unwinder(void)
{
    void *handle = dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL)
        return;
    *(void **)&libgcc.ip = dlsym(handle, "_Unwind_GetIP");
    *(void **)&libgcc.cfa = dlsym(handle, "_Unwind_GetCFA");
    *(void **)&libgcc.region_start = dlsym(handle, "_Unwind_GetRegionStart");
    void *backtrace = dlsym(handle, "_Unwind_Backtrace");
    if (libgcc.ip && libgcc.cfa && libgcc.region_start && backtrace)
        *(void **)&libgcc.backtrace = backtrace;
}

static bool is_own_frame(uintptr_t ip)
{
    return ip >= discover.self_start && ip < discover.self_end;
}

static int find_own_segments(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    uintptr_t self = (uintptr_t)data;
    uintptr_t low = UINTPTR_MAX, high = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t start = info->dlpi_addr + ph->p_vaddr, end = start + ph->p_memsz;
        low = start < low ? start : low;
        high = end > high ? end : high;
    }
    if (self < low || self >= high)
        return 0;
    discover.self_start = low;
    discover.self_end = high;
    return 1;
}

/* The shadow stack's entry for slot, or NULL (entries are in depth order: slots decrease). */
static struct shadow_entry *entry_at(struct shadow_stack *shadow, uintptr_t slot)
{
    for (unsigned i = shadow->depth; i > 0; i--) {
        struct shadow_entry *entry = &shadow->entries[i - 1];
        if (entry->slot == slot)
            return entry;
        if (entry->slot > slot)
            return NULL;
    }
    return NULL;
}

/* Follows the frame whose return address lives at slot: a new HOOK_WATCH entry, in depth
 * order.  Returns its invocation, or UINT64_MAX when it cannot be followed. */
static uint64_t follow_frame(struct shadow_stack *shadow, uintptr_t slot, uintptr_t real_return,
                             uint32_t function)
{
    if (shadow->depth >= SHADOW_STACK_ENTRIES || discover.next_invocation >= INVOCATIONS_MAX)
        return UINT64_MAX;
    unsigned at = shadow->depth;
    while (at > 0 && shadow->entries[at - 1].slot < slot)
        at--;
    memmove(&shadow->entries[at + 1], &shadow->entries[at], (shadow->depth - at) * sizeof shadow->entries[0]);
    uint64_t invocation = discover.next_invocation++;
    discover.invocation_function[invocation] = function;
    struct shadow_entry *entry = &shadow->entries[at];
    entry->slot = slot;
    entry->real_return = real_return;
    entry->hook = discover.watch_hook;
    entry->opened_region = 0;
    entry->invocation = invocation;
    shadow->depth++;
    *(uintptr_t *)slot = (uintptr_t)arenashim_exit_stub;
    discover.functions[function].calls++;
    return invocation;
}

static struct shadow_stack *thread_shadow(void)
{
    return shadow_stack_of_thread();
}

/* Adds function to the object's list unless it is there already (an outer frame of it was
 * seen first: recursion is one region, the outermost). */
static void add_followed_function(struct followed_function *found, uint32_t *count, uint32_t function,
                                  uint32_t depth, uint64_t invocation)
{
    for (uint32_t i = 0; i < *count; i++)
        if (found[i].function == function)
            return;
    if (*count == FRAMES_MAX)
        return;
    found[*count].function = function;
    found[*count].depth = depth;
    found[*count].invocation = invocation;
    (*count)++;
}

static void follow(void *object, size_t size)
{
    uint64_t started = cycle_counter();
    struct shadow_stack *shadow = thread_shadow();
    if (shadow == NULL)
        return;
    if (thread_id == 0)
        thread_id = (pid_t)syscall(SYS_gettid);
    struct frame frames[FRAMES_MAX + 8];
    if (!report_unwind_begin())
        return; /* a fork is under way: this allocation goes unfollowed */
    unsigned n = walk_stack(frames, FRAMES_MAX + 8);
    report_unwind_end();
    unsigned first = 0;
    while (first < n && first < 8 && (frames[first].ip == 0 || is_own_frame(frames[first].ip)))
        first++;
    if (first + 1 >= n)
        return;
    /* Entries below the program's current frame belong to frames left without returning
     * (a longjmp or context switch arenashim did not see). */
    shadow_unwind_to(frames[first + 1].cfa - sizeof(uintptr_t));

    uintptr_t pcs[STACK_DEPTH_MAX];
    unsigned pc_count = 0;
    for (unsigned k = first; k < n && pc_count < STACK_DEPTH_MAX; k++)
        pcs[pc_count++] = frames[k].ip;
    uint32_t stack = stack_table_intern(pcs, pc_count, MARKER_API);

    struct followed_function found[FRAMES_MAX];
    uint32_t count = 0;
    spin_lock_acquire(&discover.lock);
    /* Outermost first: the first frame of a function seen is where its region would start. */
    for (unsigned k = n - 1; k-- > first;) {
        /* arenashim's own interposers (pthread_create, __cxa_allocate_exception...) are not
         * the program's, and are not followed. */
        if (frames[k].function == 0 || frames[k + 1].cfa == 0 || is_own_frame(frames[k].ip))
            continue;
        uintptr_t slot = frames[k + 1].cfa - sizeof(uintptr_t);
        uint32_t function = function_index(frames[k].function);
        if (function == UINT32_MAX)
            continue;
        uint64_t invocation;
        struct shadow_entry *entry = entry_at(shadow, slot);
        if (entry != NULL) {
            if (hook_table[entry->hook].kind != HOOK_WATCH)
                continue; /* a marker's frame: not followed */
            invocation = entry->invocation;
        } else if (*(uintptr_t *)slot == frames[k + 1].ip) {
            invocation = follow_frame(shadow, slot, frames[k + 1].ip, function);
            if (invocation == UINT64_MAX)
                continue;
        } else {
            continue; /* not an ordinary return address (a signal frame, a hand-made stack) */
        }
        add_followed_function(found, &count, function, n - 1 - k, invocation);
        /* A frame followed as another function: that one tail-called this one (jmp), which
         * took over its frame and return slot.  A region on the first would still be open
         * here, so the object is in its region too, and escapes it the same way. */
        uint32_t followed_as = discover.invocation_function[invocation];
        if (followed_as != function)
            add_followed_function(found, &count, followed_as, n - 1 - k, invocation);
    }
    struct followed_object *followed =
        count ? metadata_alloc(sizeof *followed + count * sizeof followed->functions[0]) : NULL;
    if (followed != NULL) {
        followed->size = size;
        followed->thread = thread_id;
        followed->stack = stack;
        followed->count = count;
        memcpy(followed->functions, found, count * sizeof found[0]);
        if (object_insert((uintptr_t)object, followed)) {
            discover.sampled++;
            discover.sampled_bytes += size;
        } else {
            metadata_free(followed, sizeof *followed + count * sizeof followed->functions[0]);
            discover.dropped++;
        }
    } else {
        discover.dropped++;
    }
    discover.cycles += cycle_counter() - started;
    spin_lock_release(&discover.lock);
}

void discover_allocated(void *object, size_t size)
{
    if (!discover.on || object == NULL)
        return;
    if (countdown > 1) {
        countdown--;
        return;
    }
    countdown = discover.period;
    if (busy)
        return; /* libunwind or the symbolizer allocating while we sample */
    busy = true;
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    follow(object, size);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    busy = false;
}

void discover_freeing(void *object)
{
    if (!discover.on || object == NULL ||
        __atomic_load_n(filter_bucket((uintptr_t)object), __ATOMIC_ACQUIRE) == 0)
        return;
    struct object_slot *slot = object_slot_of((uintptr_t)object);
    if (slot == NULL)
        return;
    if (thread_id == 0)
        thread_id = (pid_t)syscall(SYS_gettid);
    uint64_t started = cycle_counter();
    spin_lock_acquire(&discover.lock);
    if (slot->address == (uintptr_t)object) {
        struct followed_object *followed = slot->object;
        account(followed, true, thread_id);
        __atomic_store_n(&slot->address, (uintptr_t)SLOT_TOMBSTONE, __ATOMIC_RELEASE);
        filter_remove((uintptr_t)object);
        discover.live_objects--;
        metadata_free(followed, sizeof *followed + followed->count * sizeof followed->functions[0]);
    }
    discover.cycles += cycle_counter() - started;
    spin_lock_release(&discover.lock);
}

/* --- start and end ---------------------------------------------------------------------------- */

bool discover_init(void)
{
    if (core_config.options.discover == 0)
        return true;
    char why[400];
    if (!markers_arch_ready(why, sizeof why)) {
        log_warn("discover: cannot follow calls here (%s); nothing will be discovered", why);
        return false;
    }
    if (hook_count >= HOOKS_MAX)
        return false;
    discover.functions = metadata_map(sizeof(struct function_stats) * FUNCTIONS_MAX);
    discover.invocation_function = metadata_map(sizeof(uint32_t) * INVOCATIONS_MAX);
    discover.returned = metadata_map(INVOCATIONS_MAX / 8);
    discover.objects = metadata_map(sizeof(struct object_slot) * OBJECT_SLOTS);
    discover.filter = metadata_map(sizeof(uint16_t) * FILTER_BUCKETS);
    discover.json = metadata_map(JSON_BYTES);
    if (!discover.functions || !discover.invocation_function || !discover.returned || !discover.objects ||
        !discover.filter || !discover.json) {
        log_warn("discover: no memory for its tables; nothing will be discovered");
        return false;
    }
    dl_iterate_phdr(find_own_segments, (void *)(uintptr_t)discover_init);
    load_libgcc_unwinder();
    unsigned index = hook_count;
    hook_table[index].kind = HOOK_WATCH;
    hook_table[index].marker = 0;
    hook_table[index].function = 0;
    discover.watch_hook = index;
    __atomic_store_n(&hook_count, index + 1, __ATOMIC_RELEASE);
    discover.period = core_config.options.discover;
    {
        void *warm[4];
        unw_backtrace(warm, 4); /* first use takes locks and may allocate: not while sampling */
    }
    __atomic_store_n(&discover.on, true, __ATOMIC_RELEASE);
    return true;
}

void discover_fork_child(void)
{
    spin_lock_reset(&discover.lock);
    if (!discover.on)
        return;
    /* The child's file says what the child did: the parent's objects and counts are the
     * parent's (its followed frames still return through the stub: their invocations stay). */
    for (size_t i = 0; i < OBJECT_SLOTS; i++)
        if (discover.objects[i].address > SLOT_TOMBSTONE)
            discover.objects[i].address = SLOT_TOMBSTONE;
    memset(discover.filter, 0, sizeof(uint16_t) * FILTER_BUCKETS);
    discover.live_objects = 0;
    for (uint32_t i = 0; i < FUNCTIONS_MAX; i++) {
        struct function_stats *f = &discover.functions[i];
        uintptr_t start = f->start;
        memset(f, 0, sizeof *f);
        f->start = start;
    }
    discover.sampled = discover.sampled_bytes = discover.dropped = discover.cycles = 0;
    thread_id = 0;
}

/* A candidate's order for the hookability checks: what a region would save, roughly. */
static double benefit(const struct function_stats *f)
{
    return (double)f->objects * (double)discover.period * 20.0 - (double)f->calls * 1000.0;
}

static int by_benefit(const void *a, const void *b)
{
    double x = benefit(&discover.functions[*(const uint32_t *)a]);
    double y = benefit(&discover.functions[*(const uint32_t *)b]);
    return x < y ? 1 : x > y ? -1 : 0;
}

/* A module of the exclude list (libc, the dynamic linker): its functions are not proposed. */
static bool module_excluded(const char *module)
{
    for (unsigned i = 0; i < core_config.options.exclude_count; i++) {
        const char *name = core_config.options.exclude[i];
        if (module[0] && strncmp(module, name, strlen(name)) == 0)
            return true;
    }
    return false;
}

struct base_query {
    uintptr_t address, load_base, phdr;
    bool found;
};

static int find_load_base(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct base_query *query = data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && query->address >= start && query->address < start + ph->p_memsz) {
            query->load_base = info->dlpi_addr;
            query->phdr = (uintptr_t)info->dlpi_phdr;
            query->found = true;
            return 1;
        }
    }
    return 0;
}

/* FUNC for the executable's named functions, MODULE:FUNC elsewhere, MODULE+0xOFF unnamed:
 * the offset from the module's load base, as the marker grammar and nm have it (for a
 * non-PIE executable, whose load base is 0, the address itself). */
static void append_spec(struct text *text, uintptr_t start, const struct symbolized *s)
{
    struct base_query query = { .address = start };
    dl_iterate_phdr(find_load_base, &query);
    bool in_main = query.found && query.phdr == getauxval(AT_PHDR);
    char spec[400];
    if (s->symbol[0] && s->symbol_offset == 0)
        snprintf(spec, sizeof spec, in_main ? "%s" : "%s:%s", in_main ? s->symbol : s->module,
                 in_main ? "" : s->symbol);
    else
        snprintf(spec, sizeof spec, "%s+%#lx", s->module[0] ? s->module : "main",
                 (unsigned long)(start - (query.found ? query.load_base : start - s->module_offset)));
    text_json_string(text, spec);
}

static void append_frame(struct text *text, uintptr_t pc)
{
    struct symbolized s;
    char frame[300];
    /* symbolize is false without a symbol (a stripped static function) but still names the
     * module: module+offset is what a MODULE+0xOFF spec or addr2line takes. */
    if (symbolize(pc - 1, &s) && s.symbol[0])
        snprintf(frame, sizeof frame, "%s+%#lx (%s)", s.symbol, (unsigned long)(s.symbol_offset + 1), s.module);
    else if (s.module[0])
        snprintf(frame, sizeof frame, "%s+%#lx", s.module, (unsigned long)(s.module_offset + 1));
    else
        snprintf(frame, sizeof frame, "%#lx", (unsigned long)pc);
    text_json_string(text, frame);
}

static void append_command(struct text *text)
{
    char line[4096];
    text_append(text, "\"command\": [");
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? syscall(SYS_read, fd, line, sizeof line - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n > 0) {
        line[n] = '\0';
        for (ssize_t at = 0; at < n; at += (ssize_t)strlen(line + at) + 1) {
            text_append(text, "%s", at ? ", " : "");
            text_json_string(text, line + at);
        }
    }
    text_append(text, "]");
}

void discover_write(void)
{
    if (!discover.on || core_config.options.discover_json[0] == '\0')
        return;
    __atomic_store_n(&discover.on, false, __ATOMIC_RELEASE);
    uint64_t started = cycle_counter();
    spin_lock_acquire(&discover.lock);
    for (size_t i = 0; i < OBJECT_SLOTS; i++)
        if (discover.objects[i].address > SLOT_TOMBSTONE)
            account(discover.objects[i].object, false, 0);
    /* The best candidates, by what they would save, get the marker layer's checks. */
    static uint32_t order[FUNCTIONS_MAX];
    uint32_t count = 0;
    for (uint32_t i = 0; i < FUNCTIONS_MAX; i++)
        if (discover.functions[i].start && discover.functions[i].objects)
            order[count++] = i;
    qsort(order, count, sizeof order[0], by_benefit);
    struct text text = { discover.json, JSON_BYTES, 0 };
    text_append(&text, "{\"pid\": %d, ", (int)getpid());
    append_command(&text);
    text_append(&text, ", \"sample_period\": %llu, \"sampled_objects\": %llu, \"sampled_bytes\": %llu, "
                "\"dropped\": %llu, \"seconds_following\": %.6f, \"functions\": [",
                (unsigned long long)discover.period, (unsigned long long)discover.sampled,
                (unsigned long long)discover.sampled_bytes, (unsigned long long)discover.dropped,
                seconds_of_cycles(discover.cycles));
    for (uint32_t r = 0; r < count; r++) {
        const struct function_stats *f = &discover.functions[order[r]];
        struct symbolized s;
        memset(&s, 0, sizeof s);
        symbolize(f->start, &s);
        char why[400] = "";
        bool excluded = module_excluded(s.module);
        bool checked = r < HOOKABILITY_CHECKS || excluded;
        bool hookable = false;
        if (excluded)
            snprintf(why, sizeof why, "it is in %s, whose allocations arenashim leaves to the heap "
                     "(exclude=)", s.module);
        else if (checked)
            hookable = markers_check_hookable(f->start, why, sizeof why);
        text_append(&text, "%s{\"spec\": ", r ? ", " : "");
        append_spec(&text, f->start, &s);
        text_append(&text, ", \"function\": ");
        text_json_string(&text, s.symbol);
        text_append(&text, ", \"module\": ");
        text_json_string(&text, s.module);
        text_append(&text, ", \"module_offset\": %llu, \"calls\": %llu, \"objects\": %llu, \"bytes\": %llu, "
                    "\"escaped_objects\": %llu, \"escaped_bytes\": %llu, \"freed_by_other_thread\": %llu, "
                    "\"leaked_objects\": %llu, \"leaked_bytes\": %llu, \"depth\": %.2f, ",
                    (unsigned long long)s.module_offset, (unsigned long long)f->calls,
                    (unsigned long long)f->objects, (unsigned long long)f->bytes,
                    (unsigned long long)f->escaped, (unsigned long long)f->escaped_bytes,
                    (unsigned long long)f->other_thread, (unsigned long long)f->leaked,
                    (unsigned long long)f->leaked_bytes,
                    f->objects ? (double)f->depth_sum / (double)f->objects : 0.0);
        if (!checked)
            text_append(&text, "\"hookable\": null, \"refusal\": null");
        else if (hookable)
            text_append(&text, "\"hookable\": true, \"refusal\": null");
        else {
            text_append(&text, "\"hookable\": false, \"refusal\": ");
            text_json_string(&text, why);
        }
        text_append(&text, ", \"escape_sites\": [");
        unsigned shown = 0;
        for (unsigned i = 0; i < ESCAPE_SITES; i++) {
            const struct escape_site *site = &f->sites[i];
            const struct stack_record *record = site->objects ? stack_table_get(site->stack) : NULL;
            if (record == NULL)
                continue;
            text_append(&text, "%s{\"objects\": %u, \"frames\": [", shown++ ? ", " : "", site->objects);
            for (unsigned d = 0; d < record->depth && d < 12; d++) {
                if (d)
                    text_append(&text, ", ");
                append_frame(&text, record->pcs[d]);
            }
            text_append(&text, "]}");
        }
        text_append(&text, "]}");
    }
    /* Symbolizing and the marker checks are part of what discovery costs the run. */
    text_append(&text, "], \"seconds_writing\": %.6f}\n", seconds_of_cycles(cycle_counter() - started));
    size_t length = text_finish(&text);
    spin_lock_release(&discover.lock);
    if (length >= JSON_BYTES) {
        log_warn("discover: %zu bytes of results do not fit in %zu; not written", length, JSON_BYTES);
        return;
    }
    char path[OPTIONS_PATH_MAX + 32];
    path_expand(path, sizeof path, core_config.options.discover_json);
    file_write_atomically(path, discover.json, length);
}
