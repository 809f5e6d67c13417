/*
 * core.c — start-up of the core and the thread records.
 *
 * Layer: core.  core_init reserves the chunk address space (PROT_NONE, MAP_NORESERVE,
 * aligned to the chunk size) and maps the chunk table and bitmap as metadata.  The default
 * reservation (256 GiB) shrinks to a quarter of what RLIMIT_AS leaves, and halves while the
 * kernel refuses it; below 32 chunks the core runs heap-only (regions open, the heap serves
 * them).  A reserve= the user gave is met or is an error.  Thread
 * records (thread_state) are created when a thread first opens a region and retired at
 * thread exit, when their open regions end and their counters fold into the global ones;
 * records are recycled, never unmapped, so a stale pointer to one stays harmless.
 * Fork: the locks of the chunk table, the thread list and the pools are taken before fork and
 * released after it in both processes (their structures are then whole in the child); the
 * rest, held only for short table updates, are reset in the child, so it never waits for a
 * thread that does not exist there.
 */
#include "internal.h"
#include "trace_log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct core core;
struct core_config core_config;

static struct fixed_pool thread_pool = FIXED_POOL_INIT(struct thread_state);

/* Region numbers a thread takes from the global counter at once. */
#define REGION_ID_BLOCK 1024

static unsigned log2_exact(size_t x)
{
    return (unsigned)__builtin_ctzll((unsigned long long)x);
}

/* The share of the address space RLIMIT_AS leaves that the chunk space may take by default:
 * the program keeps the rest for its own heap, stacks and libraries. */
#define RESERVE_SHARE_OF_LIMIT 4
/* Fewer chunks than this serve too little to be worth regions at all. */
#define RESERVE_MIN_CHUNKS 32

/* The chunk space to ask for: the option as given, or the default capped by the limit. */
static size_t reserve_wanted(const struct options *options)
{
    size_t wanted = align_up(options->reserve, options->chunk_size);
    if (options->reserve_given)
        return wanted;
    size_t left = address_space_left();
    if (left != SIZE_MAX && wanted > left / RESERVE_SHARE_OF_LIMIT)
        wanted = (left / RESERVE_SHARE_OF_LIMIT) & ~(options->chunk_size - 1);
    return wanted;
}

static void describe_limit(char *message, size_t message_len, const char *what, size_t bytes,
                           int error)
{
    size_t left = address_space_left();
    if (left != SIZE_MAX)
        snprintf(message, message_len,
                 "%s %zu bytes of address space for chunks: the address-space limit (ulimit -v) "
                 "leaves %zu bytes", what, bytes, left);
    else
        snprintf(message, message_len, "%s %zu bytes of address space for chunks (%s)", what,
                 bytes, strerror(error));
}

bool core_init(const struct options *options, char *message, size_t message_len)
{
    if (core_config.initialized)
        return true;
    core_config.options = *options;
    core_config.measure_time = options->stats || options->stats_json[0] != '\0';
    core_config.chunk_size = options->chunk_size;
    core_config.chunk_shift = log2_exact(options->chunk_size);
    core_config.small_max = options->chunk_size / 4;
    core_config.trace_period = options->trace_allocs;
    core_config.hand_on_unfaulted = options->partial_reuse || options->revoke_batch >= 2;
    pages_probe_kernel(!options->kernel_features_off);
    core.start_ns = monotonic_ns();
    core.start_cycles = cycle_counter();

    size_t wanted = reserve_wanted(options), bytes = wanted;
    size_t minimum = options->reserve_given ? wanted : RESERVE_MIN_CHUNKS * options->chunk_size;
    void *base = wanted >= minimum ? address_space_reserve(&bytes, minimum, options->chunk_size) : NULL;
    if (base == NULL) {
        if (options->reserve_given) {
            describe_limit(message, message_len, "ARENASHIM_OPTIONS: reserve: cannot reserve", wanted, errno);
            snprintf(message + strlen(message), message_len - strlen(message),
                     "; lower reserve= or leave it out to size it to the limit");
            return false;
        }
        /* Nothing useful fits: the program runs on the heap alone rather than not at all. */
        describe_limit(message, message_len, "cannot reserve even", minimum, errno);
        snprintf(message + strlen(message), message_len - strlen(message),
                 "%s; regions are off and every allocation goes to jemalloc",
                 address_space_left() != SIZE_MAX ? ", of which chunks may take a quarter" : "");
        core_config.heap_only = true;
        __atomic_store_n(&core_config.initialized, true, __ATOMIC_RELEASE);
        return true;
    }

    core_config.chunk_count = (uint32_t)(bytes >> core_config.chunk_shift);
    core.chunks = metadata_map((size_t)core_config.chunk_count * sizeof(struct chunk_meta));
    size_t bitmap_words = (core_config.chunk_count + 63) / 64;
    core.taken = metadata_map(bitmap_words * sizeof(uint64_t));
    if (core.chunks == NULL || core.taken == NULL) {
        address_space_release(base, bytes);
        snprintf(message, message_len, "cannot map %u chunk records (%s); lower reserve or raise "
                 "chunk_size", core_config.chunk_count, strerror(errno));
        return false;
    }
    /* Both stay untouched (no RSS) until their chunks are first used: the bitmap marks
     * taken chunks, so zero means available; only the bits past the last chunk are set. */
    if (core_config.chunk_count % 64)
        core.taken[bitmap_words - 1] = ~(((uint64_t)1 << (core_config.chunk_count % 64)) - 1);
    /* A quarantine that may fill the whole space would force a scan only once nothing is
     * left: with a reservation shrunk to a limit, scan at a quarter of it. */
    if (!options->quarantine_max_given && core_config.options.quarantine_max > bytes / 4)
        core_config.options.quarantine_max = bytes / 4;

    core_config.size = bytes;
    __atomic_store_n(&core_config.base, (uintptr_t)base, __ATOMIC_RELEASE);
    __atomic_store_n(&core_config.initialized, true, __ATOMIC_RELEASE);
    return true;
}

bool core_markers_init(unsigned count)
{
    if (count == 0)
        return true;
    struct marker_counters *markers = metadata_alloc((size_t)count * sizeof *markers);
    if (markers == NULL)
        return false;
    core_config.markers = markers;
    __atomic_store_n(&core_config.marker_count, count, __ATOMIC_RELEASE);
    return true;
}

void core_set_reclaim(bool (*reclaim)(void))
{
    core.reclaim = reclaim;
}

void core_set_observer(const struct core_observer *observer)
{
    __atomic_store_n(&core.observer, observer, __ATOMIC_RELEASE);
}

uint64_t region_id_refill(struct thread_state *thread)
{
    if (thread == NULL)
        return __atomic_add_fetch(&core.next_region_id, 1, __ATOMIC_RELAXED);
    thread->next_region_id = __atomic_fetch_add(&core.next_region_id, REGION_ID_BLOCK, __ATOMIC_RELAXED) + 1;
    thread->region_id_limit = thread->next_region_id + REGION_ID_BLOCK;
    return thread->next_region_id++;
}

struct thread_state *thread_state_create(pid_t tid)
{
    struct thread_state *thread = NULL;
    spin_lock_acquire(&core.threads_lock);
    if (core.free_threads) {
        thread = core.free_threads;
        core.free_threads = thread->next_free;
    }
    spin_lock_release(&core.threads_lock);
    if (thread == NULL) {
        thread = fixed_pool_alloc(&thread_pool);
        if (thread == NULL)
            return NULL;
        spin_lock_acquire(&core.threads_lock);
        thread->next_all = core.all_threads;
        core.all_threads = thread;
        spin_lock_release(&core.threads_lock);
    }
    thread->innermost = NULL;
    thread->depth = 0;
    thread->spare_count = 0;
    memset(&thread->counters, 0, sizeof thread->counters);
    thread->tid = tid;
    thread->next_region_id = thread->region_id_limit = 0;
    thread->trace_countdown = core_config.trace_period;
    thread->unrevoked_regions = 0;
    thread->number = __atomic_fetch_add(&core.next_thread_number, 1, __ATOMIC_RELAXED);
    thread->next_free = NULL;
    __atomic_store_n(&thread->alive, true, __ATOMIC_RELEASE);
    return thread;
}

void thread_state_exit(struct thread_state *thread)
{
    while (region_end(thread, 0)) {
    }
    /* Spare tails: fault the untouched rest too and quarantine the chunk. */
    for (unsigned i = 0; i < thread->spare_count; i++) {
        uint32_t index = thread->spares[i].chunk;
        uintptr_t chunk = (uintptr_t)chunk_address(index);
        /* Whole, from the chunk's start: one fresh mapping that merges with its neighbours. */
        uintptr_t start = chunk;
        __atomic_store_n(&core.chunks[index].faulted_end, (uint32_t)core_config.chunk_size, __ATOMIC_RELEASE);
        chunk_fault_range(start, chunk + core_config.chunk_size);
        chunk_quarantine(index);
    }
    thread->spare_count = 0;

    spin_lock_acquire(&core.threads_lock);
    __atomic_store_n(&thread->alive, false, __ATOMIC_RELEASE);
    stats_fold_thread(&thread->counters);
    memset(&thread->counters, 0, sizeof thread->counters);
    thread->next_free = core.free_threads;
    core.free_threads = thread;
    spin_lock_release(&core.threads_lock);
}

void core_lock_all(void)
{
    metadata_lock_pools();
    spin_lock_acquire(&thread_pool.lock);
    region_lock_pools();
    chunk_lock_pools();
    spin_lock_acquire(&core.threads_lock);
    spin_lock_acquire(&core.lock);
}

void core_unlock_all(void)
{
    spin_lock_release(&core.lock);
    spin_lock_release(&core.threads_lock);
    chunk_unlock_pools();
    region_unlock_pools();
    spin_lock_release(&thread_pool.lock);
    metadata_unlock_pools();
}

void core_fork_child(struct thread_state *survivor)
{
    /* The locks taken before fork are released; the others may have been held by a thread
     * that does not exist here: they are reset (their structures were consistent enough for
     * the parent, which goes on; the child only adds to them). */
    core_unlock_all();
    metadata_fork_child();
    chunk_fork_child();
    escape_fork_child();
    region_fork_child();
    stack_table_fork_child();
    trace_log_fork_child();
    /* The other threads are gone: their records stop counting as alive (their open regions
     * keep their memory, which the child may still reach through the parent's pointers). */
    for (struct thread_state *t = core.all_threads; t; t = t->next_all)
        if (t != survivor && t->alive) {
            t->alive = false;
            stats_fold_thread(&t->counters);
            memset(&t->counters, 0, sizeof t->counters);
        }
}
