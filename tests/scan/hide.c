/*
 * hide.c — one place where a pointer into a freed region can hide, per mode (argv[1]).
 *
 * For each mode: a region's only object (a one-chunk span, or a longer one) is freed with its
 * region, and the pointer to it is stored in the mode's place and nowhere else.  Phase 1: three
 * scans; each must keep the chunk (it is in scan_kept with the expected referrer kind) and no
 * new region allocation may land in it (probes cycle through every available chunk, lowest
 * first).  Phase 2: the place is cleared; one scan must release the chunk (chunks_released
 * grows, it is not in scan_kept) and a new region allocation must land in it.
 *
 * Prints "DEAD 0xADDR CHUNKS" (the span's first chunk) and "TID n" for thread modes, so the
 * runner can match verbose=1 lines; "FAILED ..." lines and exit 1 on failure.
 */
#include "scanutil.h"

#include <dlfcn.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>

struct mode {
    const char *name;
    const char *expect_kind; /* scan_kept kind; NULL: not checked */
    size_t bytes;            /* the dead object */
    size_t offset;           /* where in it the hidden pointer points */
    void (*prepare)(void);
    void (*store)(uintptr_t value);
    void (*clear)(void);
    void (*finish)(void);
    void (*collect)(void); /* phase 1's scan; NULL: su_collect_clean() */
};

/* --- the places ------------------------------------------------------------------------ */

static volatile uintptr_t data_slot[4] = { 1, 2, 3, 4 }; /* .data */
static volatile uintptr_t bss_slot[4];                   /* .bss */
static __thread volatile uintptr_t tls_slot[4];          /* the executable's TLS */
static volatile uintptr_t *volatile main_stack_slot;     /* a local of main() */
static volatile uintptr_t *heap_object;                  /* jemalloc, outside regions */
static volatile uintptr_t *region_object;                /* a live object of an open region */
static volatile uintptr_t *mmap_area;
static size_t mmap_area_bytes;
static size_t mmap_slot_index;

static void store_data(uintptr_t v) { data_slot[2] = v; }
static void clear_data(void) { data_slot[2] = 0; }
static void store_bss(uintptr_t v) { bss_slot[1] = v; }
static void clear_bss(void) { bss_slot[1] = 0; }
static void store_tls(uintptr_t v) { tls_slot[3] = v; }
static void clear_tls(void) { tls_slot[3] = 0; }
static void store_main_stack(uintptr_t v) { *main_stack_slot = v; }
static void clear_main_stack(void) { *main_stack_slot = 0; }

/* dlopen'ed library TLS */
static void (*lib_set)(uintptr_t);
static uintptr_t (*lib_get)(void);
static void prepare_dlopen_tls(void)
{
    const char *path = getenv("SCAN_TLS_LIB");
    void *handle = path ? dlopen(path, RTLD_NOW) : NULL;
    if (handle == NULL) {
        printf("FAILED: dlopen(%s): %s\n", path ? path : "(SCAN_TLS_LIB unset)", dlerror());
        exit(3);
    }
    lib_set = (void (*)(uintptr_t))dlsym(handle, "scan_tls_lib_set");
    lib_get = (uintptr_t(*)(void))dlsym(handle, "scan_tls_lib_get");
    if (!lib_set || !lib_get) {
        printf("FAILED: dlsym\n");
        exit(3);
    }
    lib_set(0); /* the thread's block of the library's TLS exists from here on */
}
static void store_dlopen_tls(uintptr_t v)
{
    lib_set(v);
    CHECK(lib_get() == v, "the library's TLS does not hold the value");
}
static void clear_dlopen_tls(void) { lib_set(0); }

/* heap */
static void prepare_heap(void)
{
    heap_object = malloc(256);
    memset((void *)heap_object, 0, 256);
    CHECK(arenashim_heapify((void *)heap_object) == (void *)heap_object,
          "a malloc outside regions is a region object");
}
static void store_heap(uintptr_t v) { heap_object[5] = v; }
static void clear_heap(void) { heap_object[5] = 0; }

/* a live region object of an open outer region */
static void prepare_region(void)
{
    arenashim_region_begin();
    region_object = malloc(64);
    memset((void *)region_object, 0, 64);
    void *copy = arenashim_heapify((void *)region_object);
    CHECK(copy != (void *)region_object, "the outer region's object is not a region object");
    free(copy);
}
static void store_region(uintptr_t v) { region_object[2] = v; }
static void clear_region(void) { region_object[2] = 0; }
static void finish_region(void) { arenashim_region_end(); }

/* anonymous mappings */
static void map_area(size_t bytes, int flags)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, flags | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        printf("FAILED: mmap: %s\n", strerror(errno));
        exit(3);
    }
    mmap_area = p;
    mmap_area_bytes = bytes;
}
static void prepare_mmap(void)
{
    map_area(64 << 10, MAP_PRIVATE);
    mmap_slot_index = 100;
}
/* An anonymous mapping far from everything else (jemalloc's metadata knows nothing of it). */
static void prepare_mmap_far(void)
{
    void *hint = (void *)(uintptr_t)0x100000000000ull;
    void *p = mmap(hint, 64 << 10, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        printf("FAILED: mmap: %s\n", strerror(errno));
        exit(3);
    }
    mmap_area = p;
    mmap_area_bytes = 64 << 10;
    mmap_slot_index = 300;
    printf("MMAP %p-%p\n", p, (void *)((char *)p + mmap_area_bytes));
}
static void prepare_shared(void)
{
    map_area(64 << 10, MAP_SHARED);
    mmap_slot_index = 200;
}
static void store_mmap(uintptr_t v) { mmap_area[mmap_slot_index] = v; }
static void clear_mmap(void) { mmap_area[mmap_slot_index] = 0; }
static void finish_mmap(void) { munmap((void *)mmap_area, mmap_area_bytes); }

/* --- threads --------------------------------------------------------------------------- */

static int cmd_pipe[2], ack_pipe[2];
static volatile uintptr_t handoff;
static pthread_t helper;

static void send_cmd(char c)
{
    while (write(cmd_pipe[1], &c, 1) != 1 && errno == EINTR) {
    }
}
static void wait_ack(void)
{
    char c;
    while (read(ack_pipe[0], &c, 1) != 1) {
        if (errno != EINTR) {
            printf("FAILED: helper thread gone\n");
            exit(3);
        }
    }
}
static void send_ack(void)
{
    char c = 'a';
    while (write(ack_pipe[1], &c, 1) != 1 && errno == EINTR) {
    }
}
static void make_pipes(void)
{
    if (pipe(cmd_pipe) != 0 || pipe(ack_pipe) != 0) {
        printf("FAILED: pipe\n");
        exit(3);
    }
}

/* A thread whose stack holds the pointer while it blocks in read() on a pipe. */
static void *stack_thread(void *arg)
{
    (void)arg;
    volatile uintptr_t slot[4];
    slot[0] = slot[2] = slot[3] = 0;
    slot[1] = handoff;
    handoff = 0;
    printf("TID %ld\n", (long)syscall(SYS_gettid));
    fflush(stdout);
    send_ack();
    for (;;) {
        char c;
        ssize_t n = read(cmd_pipe[0], &c, 1); /* blocked here while the scans run */
        if (n != 1) {
            if (n < 0 && errno == EINTR) {
                printf("note: read() on the pipe failed with EINTR\n");
                continue;
            }
            break;
        }
        if (c == 'c') {
            slot[1] = 0;
            su_clear_stack();
            su_scrub_registers();
            send_ack();
        } else if (c == 'q') {
            break;
        }
    }
    return NULL;
}

/* A thread that holds the pointer only in r12 while it blocks in a raw read system call. */
static void *register_thread(void *arg)
{
    (void)arg;
    char cmd = 0, ack = 'a';
    int ack_fd = ack_pipe[1], cmd_fd = cmd_pipe[0];
    printf("TID %ld\n", (long)syscall(SYS_gettid));
    fflush(stdout);
    __asm__ volatile("mov %[handoff], %%r12\n\t"
                     "movq $0, %[handoff]\n\t"
                     "1:\n\t" /* acknowledge */
                     "mov $1, %%eax\n\t" /* SYS_write */
                     "mov %[ack_fd], %%edi\n\t"
                     "lea %[ack], %%rsi\n\t"
                     "mov $1, %%edx\n\t"
                     "syscall\n\t"
                     "2:\n\t" /* wait for a command: the scans run while we are here */
                     "xor %%eax, %%eax\n\t" /* SYS_read */
                     "mov %[cmd_fd], %%edi\n\t"
                     "lea %[cmd], %%rsi\n\t"
                     "mov $1, %%edx\n\t"
                     "syscall\n\t"
                     "cmp $-4, %%rax\n\t" /* EINTR: read again */
                     "je 2b\n\t"
                     "cmp $1, %%rax\n\t"
                     "jne 3f\n\t"
                     "movzbl %[cmd], %%eax\n\t"
                     "cmp $0x63, %%eax\n\t" /* 'c': forget the pointer */
                     "jne 4f\n\t"
                     "xor %%r12d, %%r12d\n\t"
                     "jmp 1b\n\t"
                     "4:\n\t"
                     "cmp $0x71, %%eax\n\t" /* 'q' */
                     "jne 2b\n\t"
                     "3:\n\t"
                     : [handoff] "+m"(handoff), [cmd] "+m"(cmd), [ack] "+m"(ack)
                     : [ack_fd] "r"(ack_fd), [cmd_fd] "r"(cmd_fd)
                     : "rax", "rcx", "rdx", "rsi", "rdi", "r11", "r12", "memory", "cc");
    return NULL;
}

/* A thread that keeps the pointer only in its red zone (below its stack pointer) while it
 * blocks in a raw read system call, which does not touch the stack. */
static void *red_zone_thread(void *arg)
{
    (void)arg;
    char cmd = 0, ack = 'a';
    int ack_fd = ack_pipe[1], cmd_fd = cmd_pipe[0];
    printf("TID %ld\n", (long)syscall(SYS_gettid));
    fflush(stdout);
    __asm__ volatile("mov %[handoff], %%rax\n\t"
                     "mov %%rax, -64(%%rsp)\n\t"
                     "xor %%eax, %%eax\n\t"
                     "movq $0, %[handoff]\n\t"
                     "1:\n\t"
                     "mov $1, %%eax\n\t"
                     "mov %[ack_fd], %%edi\n\t"
                     "lea %[ack], %%rsi\n\t"
                     "mov $1, %%edx\n\t"
                     "syscall\n\t"
                     "2:\n\t"
                     "xor %%eax, %%eax\n\t"
                     "mov %[cmd_fd], %%edi\n\t"
                     "lea %[cmd], %%rsi\n\t"
                     "mov $1, %%edx\n\t"
                     "syscall\n\t"
                     "cmp $-4, %%rax\n\t"
                     "je 2b\n\t"
                     "cmp $1, %%rax\n\t"
                     "jne 3f\n\t"
                     "movzbl %[cmd], %%eax\n\t"
                     "cmp $0x63, %%eax\n\t"
                     "jne 4f\n\t"
                     "movq $0, -64(%%rsp)\n\t"
                     "jmp 1b\n\t"
                     "4:\n\t"
                     "cmp $0x71, %%eax\n\t"
                     "jne 2b\n\t"
                     "3:\n\t"
                     : [handoff] "+m"(handoff), [cmd] "+m"(cmd), [ack] "+m"(ack)
                     : [ack_fd] "r"(ack_fd), [cmd_fd] "r"(cmd_fd)
                     : "rax", "rcx", "rdx", "rsi", "rdi", "r11", "memory", "cc");
    return NULL;
}

static void start_helper(void *(*function)(void *), const pthread_attr_t *attr)
{
    if (pthread_create(&helper, attr, function, NULL) != 0) {
        printf("FAILED: pthread_create\n");
        exit(3);
    }
    wait_ack();
}

static void prepare_thread(void) { make_pipes(); }
static void store_stack_thread(uintptr_t v)
{
    handoff = v;
    start_helper(stack_thread, NULL);
}
static void store_register_thread(uintptr_t v)
{
    handoff = v;
    start_helper(register_thread, NULL);
}
static void store_red_zone_thread(uintptr_t v)
{
    handoff = v;
    start_helper(red_zone_thread, NULL);
}
static void clear_thread(void)
{
    send_cmd('c');
    wait_ack();
}
static void finish_thread(void)
{
    send_cmd('q');
    pthread_join(helper, NULL);
}

/* A thread whose stack is the upper half of one anonymous mapping (pthread_attr_setstack),
 * the pointer in the lower half: the mapping holds the stack but is not all stack. */
static void *blocked_thread(void *arg)
{
    (void)arg;
    send_ack();
    char c = 0;
    while (read(cmd_pipe[0], &c, 1) == 1 || errno == EINTR) {
        if (c == 'q')
            break;
    }
    return NULL;
}
static void prepare_user_stack(void)
{
    make_pipes();
    map_area(2 << 20, MAP_PRIVATE);
    mmap_slot_index = 4096 / sizeof(uintptr_t);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstack(&attr, (char *)mmap_area + (1 << 20), 1 << 20);
    start_helper(blocked_thread, &attr);
    pthread_attr_destroy(&attr);
    printf("MMAP %p-%p (stack in the upper half)\n", (void *)mmap_area,
           (void *)((char *)mmap_area + mmap_area_bytes));
}
static void finish_user_stack(void)
{
    send_cmd('q');
    pthread_join(helper, NULL);
    finish_mmap();
}

/* Two threads whose stacks are the two halves of one anonymous mapping.  This is the layout
 * the kernel makes by itself when threads are created without guard pages
 * (pthread_attr_setguardsize 0): their stack mappings are adjacent with equal flags and merge
 * into one.  Built here with pthread_attr_setstack so that it is certain.  The first thread
 * (lower tid) has the upper half and is parked in read(); the second holds the pointer on
 * its stack, in the lower half. */
static int park_pipe[2];
static pthread_t parked;
static char *merged_stacks;
#define MERGED_HALF ((size_t)1 << 20) /* su_clear_stack() needs 256 KiB */

static void *parked_thread(void *arg)
{
    (void)arg;
    send_ack();
    char c = 0;
    while (read(park_pipe[0], &c, 1) == 1 || errno == EINTR) {
        if (c == 'q')
            break;
    }
    return NULL;
}
static void prepare_merged_stacks(void)
{
    make_pipes();
    if (pipe(park_pipe) != 0)
        exit(3);
    merged_stacks = mmap(NULL, 2 * MERGED_HALF, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (merged_stacks == MAP_FAILED) {
        printf("FAILED: mmap: %s\n", strerror(errno));
        exit(3);
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstack(&attr, merged_stacks + MERGED_HALF, MERGED_HALF);
    if (pthread_create(&parked, &attr, parked_thread, NULL) != 0) {
        printf("FAILED: pthread_create\n");
        exit(3);
    }
    pthread_attr_destroy(&attr);
    wait_ack();
}
static void store_merged_stacks(uintptr_t v)
{
    handoff = v;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstack(&attr, merged_stacks, MERGED_HALF);
    start_helper(stack_thread, &attr);
    pthread_attr_destroy(&attr);
}
static void finish_merged_stacks(void)
{
    finish_thread();
    char c = 'q';
    if (write(park_pipe[1], &c, 1) != 1)
        printf("note: cannot wake the parked thread\n");
    pthread_join(parked, NULL);
    munmap(merged_stacks, 2 * MERGED_HALF);
}

/* The collecting thread itself holds the pointer only in a callee-saved register (rbx)
 * across arenashim_collect(). */
static void store_handoff(uintptr_t v) { handoff = v; }
static void clear_handoff(void) { handoff = 0; }
NOINLINE static void collect_holding_rbx(void)
{
    su_clear_stack();
    su_scrub_registers();
    __asm__ volatile("mov %[handoff], %%rbx\n\t"
                     "movq $0, %[handoff]\n\t"
                     "mov %%rsp, %%r12\n\t"
                     "sub $256, %%rsp\n\t"
                     "and $-16, %%rsp\n\t"
                     "call *%[collect]\n\t"
                     "mov %%r12, %%rsp\n\t"
                     "mov %%rbx, %[handoff]\n\t" /* back for the next round */
                     "xor %%ebx, %%ebx\n\t"
                     : [handoff] "+m"(handoff)
                     : [collect] "r"(arenashim_collect)
                     : "rbx", "r12", "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11",
                       "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                       "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc");
}

/* --- the test -------------------------------------------------------------------------- */

#define SPAN SPAN_OBJECT_BYTES
static const struct mode modes[] = {
    { .name = "data", .expect_kind = "module", .bytes = SPAN, .store = store_data,
      .clear = clear_data },
    { .name = "bss", .expect_kind = "module", .bytes = SPAN, .offset = 300000, .store = store_bss,
      .clear = clear_bss },
    { .name = "tls", .bytes = SPAN, .store = store_tls, .clear = clear_tls },
    { .name = "dlopen_tls", .bytes = SPAN, .prepare = prepare_dlopen_tls, .store = store_dlopen_tls,
      .clear = clear_dlopen_tls },
    { .name = "main_stack", .expect_kind = "stack", .bytes = SPAN, .store = store_main_stack,
      .clear = clear_main_stack },
    { .name = "thread_stack", .expect_kind = "stack", .bytes = SPAN, .prepare = prepare_thread,
      .store = store_stack_thread, .clear = clear_thread, .finish = finish_thread },
    { .name = "register", .expect_kind = "registers", .bytes = SPAN, .prepare = prepare_thread,
      .store = store_register_thread, .clear = clear_thread, .finish = finish_thread },
    { .name = "merged_thread_stacks", .expect_kind = "stack", .bytes = SPAN,
      .prepare = prepare_merged_stacks, .store = store_merged_stacks, .clear = clear_thread,
      .finish = finish_merged_stacks },
    { .name = "red_zone", .expect_kind = "stack", .bytes = SPAN, .prepare = prepare_thread,
      .store = store_red_zone_thread, .clear = clear_thread, .finish = finish_thread },
    { .name = "collector_register", .bytes = SPAN, .store = store_handoff, .clear = clear_handoff,
      .collect = collect_holding_rbx },
    { .name = "heap", .expect_kind = "heap", .bytes = SPAN, .prepare = prepare_heap,
      .store = store_heap, .clear = clear_heap },
    { .name = "region", .expect_kind = "region", .bytes = SPAN, .prepare = prepare_region,
      .store = store_region, .clear = clear_region, .finish = finish_region },
    { .name = "mmap", .expect_kind = "anonymous", .bytes = SPAN, .prepare = prepare_mmap,
      .store = store_mmap, .clear = clear_mmap, .finish = finish_mmap },
    { .name = "mmap_far", .expect_kind = "anonymous", .bytes = SPAN, .prepare = prepare_mmap_far,
      .store = store_mmap, .clear = clear_mmap, .finish = finish_mmap },
    { .name = "shared", .expect_kind = "shared", .bytes = SPAN, .prepare = prepare_shared,
      .store = store_mmap, .clear = clear_mmap, .finish = finish_mmap },
    /* a pointer into the third chunk of a three-chunk span keeps the whole span */
    { .name = "span_tail", .expect_kind = "module", .bytes = (5 * CHUNK_BYTES) / 2,
      .offset = (9 * CHUNK_BYTES) / 4, .store = store_data, .clear = clear_data },
    { .name = "user_stack_mapping", .bytes = SPAN, .prepare = prepare_user_stack,
      .store = store_mmap, .clear = clear_mmap, .finish = finish_user_stack },
};

NOINLINE static void run(const struct mode *mode)
{
    if (mode->prepare)
        mode->prepare();
    unsigned chunks = 0;
    uintptr_t first = su_make_dead(mode->bytes, mode->offset, mode->store, &chunks);
    /* Only chunk numbers live in this frame: an address would keep the chunk itself. */
    printf("DEAD 0x%" PRIxPTR "00000 %u\n", first, chunks);
    fflush(stdout);

    for (int round = 0; round < 3; round++) {
        if (mode->collect)
            mode->collect();
        else
            su_collect_clean();
        char kind[32];
        int kept = su_kept_kind(first, kind, sizeof kind);
        unsigned long long kept_last = su_json_number("scan_chunks_kept_last");
        CHECK(kept, "round %d: the scan did not keep the chunk (scan_chunks_kept_last %llu; %.300s)",
              round, kept_last, strstr(su_json, "\"scan_kept\""));
        if (kept && mode->expect_kind)
            CHECK(strcmp(kind, mode->expect_kind) == 0, "round %d: referrer kind '%s', expected '%s'",
                  round, kind, mode->expect_kind);
        unsigned probes = su_probe_count();
        unsigned hits = su_probe(first, chunks, probes);
        CHECK(hits == 0, "round %d: %u of %u new region allocations landed in the kept chunk",
              round, hits, probes);
    }

    su_stats_refresh();
    unsigned long long released = su_json_number("chunks_released");
    mode->clear();
    su_collect_clean();
    char kind[32];
    int kept = su_kept_kind(first, kind, sizeof kind);
    CHECK(!kept, "after clearing, the scan still kept the chunk (kind '%s'; %.600s)", kind,
          strstr(su_json, "\"scan_kept\""));
    unsigned long long released_after = su_json_number("chunks_released");
    CHECK(released_after >= released + chunks, "chunks_released %llu -> %llu, expected +%u at least",
          released, released_after, chunks);
    unsigned probes = su_probe_count();
    unsigned hits = su_probe(first, chunks, probes);
    CHECK(hits >= 1, "after clearing, none of %u new region allocations landed in the freed chunk",
          probes);
    if (mode->finish)
        mode->finish();
    su_print_stats("end");
}

int main(int argc, char **argv)
{
    su_require_shim();
    volatile uintptr_t stack_slot[4] = { 0, 0, 0, 0 };
    main_stack_slot = &stack_slot[1];
    if (argc < 2) {
        printf("usage: hide MODE\n");
        return 3;
    }
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (strcmp(modes[i].name, argv[1]) == 0) {
            run(&modes[i]);
            printf("DONE %s failures=%d\n", argv[1], su_failures);
            return su_failures ? 1 : 0;
        }
    }
    printf("unknown mode %s\n", argv[1]);
    return 3;
}
