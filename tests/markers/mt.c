/*
 * mt.c — the C program of the function-marker tests (tests/markers/run.py).
 *
 * It knows nothing about arenashim: no header, no API.  run.py marks its functions from the
 * outside (ARENASHIM_REGIONS=FUNC, or main+0xOFFSET for the stripped build) and checks what
 * comes of it: the output must equal a run without the preload, the stats_json figures must
 * show one region per call, and a pointer leaked out of a call must fault right after it.
 *
 * Usage: mt MODE [ARGS...]; see main() at the bottom.  Exit status 0 when every check inside
 * the program held, 3 (with a message on stderr) when one did not.
 *
 * Functions meant as markers are noinline/noclone so that they exist under their own names;
 * they are not noipa, so callers keep the liberties -fipa-ra gives them (values held in
 * "scratch" registers across a call known not to touch them): the hooks must keep those too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOINL __attribute__((noinline, noclone))

static void fail(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    fputs("mt: check failed: ", stderr);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    fflush(stdout);
    _exit(3);
}

/* Inputs the compiler cannot see through, so results are computed at run time. */
volatile int seed = 7;
/* A pointer leaked out of a region. */
void *volatile escaped;
volatile long sink;

static unsigned char pattern(int call, int object, size_t byte)
{
    return (unsigned char)(call * 31 + object * 7 + byte * 13 + 1);
}

static size_t object_size(int object)
{
    return 16 + (size_t)(object * 37) % 200;
}

/* The body shared by the allocating markers: count objects, filled and verified, the first
 * one leaked to `escaped` when asked (and read back inside the call: still valid there). */
static inline __attribute__((always_inline)) long allocate_objects(int call, int count, int escape, const char *who)
{
    unsigned char *objects[64];
    if (count > 64)
        count = 64;
    long sum = 0;
    for (int i = 0; i < count; i++) {
        size_t size = object_size(i);
        objects[i] = malloc(size);
        if (objects[i] == NULL)
            fail("%s: malloc(%zu) returned NULL", who, size);
        for (size_t b = 0; b < size; b++)
            objects[i][b] = pattern(call, i, b);
    }
    for (int i = 0; i < count; i++)
        for (size_t b = 0; b < object_size(i); b++) {
            if (objects[i][b] != pattern(call, i, b))
                fail("%s: call %d object %d byte %zu is %u, expected %u", who, call, i, b,
                     objects[i][b], pattern(call, i, b));
            sum += objects[i][b];
        }
    if (escape && count > 0) {
        escaped = objects[0];
        if (((volatile unsigned char *)escaped)[3] != pattern(call, 0, 3))
            fail("%s: leaked object unreadable inside the call", who);
    }
    /* Free every other object (a no-op in a region); never the leaked one, whose contents a
     * run without arenashim must keep too. */
    for (int i = escape ? 2 : 0; i < count; i += 2)
        free(objects[i]);
    return sum;
}

/* A static function: found through .symtab only. */
static NOINL long static_work(int call, int count, int escape)
{
    return allocate_objects(call, count, escape, "static_work");
}

/* An exported function (-rdynamic puts it in .dynsym). */
NOINL long exported_work(int call, int count, int escape)
{
    return allocate_objects(call, count, escape, "exported_work");
}

/* In libmkshared.so, linked at start-up. */
long shared_work(int call, int count, int escape);

typedef long (*work_fn)(int, int, int);

static work_fn work_by_name(const char *name)
{
    if (strcmp(name, "static") == 0)
        return static_work;
    if (strcmp(name, "exported") == 0)
        return exported_work;
    if (strcmp(name, "shared") == 0)
        return shared_work;
    fail("unknown work function '%s'", name);
    return NULL;
}

/* mt alloc FN N K: N calls of FN, K objects each. */
static int mode_alloc(const char *name, int calls, int count)
{
    work_fn fn = work_by_name(name);
    long total = 0;
    /* Objects made between the calls belong to no region: the region ends exactly at the
     * return (run.py counts region_allocs), and they stay valid to the end. */
    long **keepers = malloc(sizeof(long *) * (size_t)(calls + 1));
    if (keepers == NULL)
        fail("malloc");
    for (int i = 0; i < calls; i++) {
        total += fn(i, count, 0);
        keepers[i] = malloc(3 * sizeof(long));
        if (keepers[i] == NULL)
            fail("malloc");
        keepers[i][0] = i;
        keepers[i][2] = -i;
    }
    for (int i = 0; i < calls; i++)
        if (keepers[i][0] != i || keepers[i][2] != -i)
            fail("an object made after call %d changed", i);
    printf("alloc %s calls=%d objects=%d sum=%ld\n", name, calls, count, total);
    return 0;
}

/* mt escape FN AFTER: one call leaks an object; AFTER=1 reads it after the return, AFTER=2
 * writes it. */
static int mode_escape(const char *name, int read_after)
{
    work_fn fn = work_by_name(name);
    long sum = fn(5, 4, 1);
    printf("escape %s sum=%ld\n", name, sum);
    fflush(stdout);
    if (read_after == 1) {
        unsigned char value = ((volatile unsigned char *)escaped)[3];
        printf("read after return: %u\n", value);
    } else if (read_after == 2) {
        ((volatile unsigned char *)escaped)[3] = 1;
        printf("wrote after return\n");
    }
    return 0;
}

/* mt write_escaped: one call leaks an object, whose first 16 bytes then go to stdout with
 * write(2): the kernel, not the program, touches the dead region (as xmllint --c14n does with
 * the buffer xmlStrndup made). */
static int mode_write_escaped(void)
{
    long sum = static_work(5, 4, 1);
    printf("sum=%ld\n", sum);
    fflush(stdout);
    ssize_t n = write(1, escaped, 16);
    printf("\nwrite returned %zd%s%s\n", n, n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
    return 0;
}

/* mt read_escaped: the same, the other way: read(2) fills a leaked object (as libxml2's
 * parser does with an input buffer grown inside xmlParserInputGrow). */
static int mode_read_escaped(void)
{
    long sum = static_work(5, 4, 1);
    int fds[2];
    if (pipe(fds) != 0 || write(fds[1], "hello, region", 13) != 13)
        fail("pipe");
    ssize_t n = read(fds[0], escaped, 13);
    printf("sum=%ld read returned %zd%s%s\n", sum, n, n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
    if (n == 13)
        printf("read: %.13s\n", (const char *)escaped);
    return 0;
}

/* --- return values of every kind --------------------------------------------------------- */

struct d2 { double x, y; };              /* xmm0:xmm1 */
struct s16 { long a, b; };               /* rax:rdx */
struct mixed { double x; long n; };      /* xmm0 + rax */
struct big { long v[8]; };               /* via hidden pointer (rdi -> rax) */
struct f4 { float a, b, c, d; };         /* xmm0 (2 floats) + xmm1 (2 floats) */

static long scratch_alloc(int alloc)
{
    if (!alloc)
        return 0;
    long *p = malloc(48);
    if (p == NULL)
        fail("scratch malloc");
    for (int i = 0; i < 6; i++)
        p[i] = seed + i;
    long s = 0;
    for (int i = 0; i < 6; i++)
        s += p[i];
    free(p);
    return s;
}

NOINL int ret_int(int alloc) { return (int)(scratch_alloc(alloc) * 0) - 123456789 + seed; }
NOINL long ret_long(int alloc) { return (long)(scratch_alloc(alloc) * 0) + 0x123456789abcdefL + seed; }
static char static_data[64];
NOINL char *ret_ptr(int alloc) { return static_data + (scratch_alloc(alloc) * 0) + seed; }
NOINL double ret_double(int alloc) { return (double)(scratch_alloc(alloc) * 0) + 3.141592653589793 * seed; }
NOINL float ret_float(int alloc) { return (float)(scratch_alloc(alloc) * 0) + 2.7182817f * seed; }
NOINL long double ret_ldouble(int alloc)
{
    return (long double)(scratch_alloc(alloc) * 0) + 1.0L / 3.0L * seed + 1e-19L;
}
NOINL _Complex long double ret_cldouble(int alloc)
{
    _Complex long double z = (long double)(scratch_alloc(alloc) * 0) + 1.25L * seed;
    __imag__ z = -7.0L / 9.0L * seed;
    return z;
}
NOINL struct d2 ret_d2(int alloc)
{
    struct d2 r = { 1.5 * seed + (double)(scratch_alloc(alloc) * 0), -2.25 / seed };
    return r;
}
NOINL struct s16 ret_s16(int alloc)
{
    struct s16 r = { 0x1111222233334444L + seed + scratch_alloc(alloc) * 0, -0x5555666677778888L - seed };
    return r;
}
NOINL struct mixed ret_mixed(int alloc)
{
    struct mixed r = { 0.1 * seed + (double)(scratch_alloc(alloc) * 0), 0x7777L * seed };
    return r;
}
NOINL struct big ret_big(int alloc)
{
    struct big r;
    long base = scratch_alloc(alloc) * 0 + seed;
    for (int i = 0; i < 8; i++)
        r.v[i] = base * 1000003L * (i + 1);
    return r;
}
NOINL struct f4 ret_f4(int alloc)
{
    struct f4 r = { 0.5f * seed + (float)(scratch_alloc(alloc) * 0), -0.25f * seed, 1e30f, 3.0f / seed };
    return r;
}

/* In mt_avx.c (compiled with -mavx2): prints the __m256/__m256d results of its markers. */
void avx_returns(int alloc);
int avx_supported(void);

static int mode_returns(void)
{
    for (int alloc = 0; alloc < 2; alloc++) {
        int i = ret_int(alloc);
        long l = ret_long(alloc);
        char *p = ret_ptr(alloc);
        double d = ret_double(alloc);
        float f = ret_float(alloc);
        long double ld = ret_ldouble(alloc);
        _Complex long double cld = ret_cldouble(alloc);
        struct d2 d2 = ret_d2(alloc);
        struct s16 s16 = ret_s16(alloc);
        struct mixed m = ret_mixed(alloc);
        struct big b = ret_big(alloc);
        struct f4 f4 = ret_f4(alloc);
        printf("alloc=%d int=%d long=%ld ptr=+%ld double=%a float=%a\n", alloc, i, l,
               (long)(p - static_data), d, (double)f);
        printf("alloc=%d ldouble=%La cldouble=%La%+Lai\n", alloc, ld, __real__ cld, __imag__ cld);
        printf("alloc=%d d2=%a,%a s16=%lx,%lx mixed=%a,%ld\n", alloc, d2.x, d2.y,
               (unsigned long)s16.a, (unsigned long)s16.b, m.x, m.n);
        printf("alloc=%d big=", alloc);
        for (int k = 0; k < 8; k++)
            printf("%ld%s", b.v[k], k < 7 ? "," : "\n");
        printf("alloc=%d f4=%a,%a,%a,%a\n", alloc, (double)f4.a, (double)f4.b, (double)f4.c,
               (double)f4.d);
        if (avx_supported())
            avx_returns(alloc);
        else
            printf("alloc=%d avx unsupported\n", alloc);
    }
    return 0;
}

/* --- recursion ------------------------------------------------------------------------ */

/* Every level allocates; inner levels return their object to the outer ones, which read it:
 * that only works when the whole recursion is one region. */
NOINL unsigned char *recurse(int depth, int tag)
{
    unsigned char *mine = malloc(40);
    if (mine == NULL)
        fail("recurse malloc");
    memset(mine, (tag + depth) & 0xff, 40);
    if (depth > 0) {
        unsigned char *inner = recurse(depth - 1, tag);
        for (int i = 0; i < 40; i++)
            if (inner[i] != ((tag + depth - 1) & 0xff))
                fail("recursion: depth %d sees inner object byte %d = %u", depth, i, inner[i]);
        sink += inner[0];
    }
    return mine;
}

static int mode_recurse(int calls, int depth)
{
    for (int i = 0; i < calls; i++)
        (void)recurse(depth, i);
    printf("recurse calls=%d depth=%d\n", calls, depth);
    return 0;
}

/* --- nesting: two markers ------------------------------------------------------------- */

NOINL long nest_inner(int call, int escape)
{
    long *b = malloc(64);
    if (b == NULL)
        fail("nest_inner malloc");
    for (int i = 0; i < 8; i++)
        b[i] = call * 100 + i;
    long s = 0;
    for (int i = 0; i < 8; i++)
        s += b[i];
    if (escape)
        escaped = b;
    return s;
}

NOINL long nest_outer(int call, int escape)
{
    long *a = malloc(128);
    if (a == NULL)
        fail("nest_outer malloc");
    for (int i = 0; i < 16; i++)
        a[i] = call * 1000 + i;
    long s = nest_inner(call, escape);
    /* The outer region's object outlives the inner region. */
    for (int i = 0; i < 16; i++)
        if (a[i] != call * 1000 + i)
            fail("nest_outer: object changed after the inner call returned");
    if (escape) {
        /* The inner region has ended: this read must fault (marker nest_inner). */
        s += ((volatile long *)escaped)[1];
    }
    return s + a[15];
}

static int mode_nest(int calls, int escape)
{
    long total = 0;
    for (int i = 0; i < calls; i++)
        total += nest_outer(i, escape);
    printf("nest calls=%d total=%ld\n", calls, total);
    return 0;
}

/* --- longjmp -------------------------------------------------------------------------- */

static jmp_buf jump_env;
static sigjmp_buf signal_env;

NOINL void jump_out(int how)
{
    if (how == 1)
        longjmp(jump_env, 1);
    _longjmp(jump_env, 2);
}

NOINL long lj_work(int call, int jump)
{
    long *p = malloc(32);
    if (p == NULL)
        fail("lj_work malloc");
    p[0] = call;
    p[1] = call * 3;
    escaped = p;
    if (jump)
        jump_out(jump);
    return p[0] + p[1];
}

/* mt longjmp N READ: calls lj_work N times, every other one leaving by longjmp/_longjmp;
 * then READ=1 reads the object of the last call that jumped (its region must be over). */
static int mode_longjmp(int calls, int read_after)
{
    long total = 0;
    int jumped = 0;
    void *jumped_object = NULL;
    for (volatile int i = 0; i < calls; i++) {
        int how = (i % 4 == 1) ? 1 : (i % 4 == 3) ? 2 : 0;
        int landed = setjmp(jump_env);
        if (landed == 0) {
            total += lj_work(i, how);
        } else {
            jumped++;
            jumped_object = escaped;
        }
    }
    /* Later calls, after the jumps, still work. */
    for (int i = 0; i < 3; i++)
        total += lj_work(100 + i, 0);
    printf("longjmp calls=%d jumped=%d total=%ld\n", calls, jumped, total);
    fflush(stdout);
    if (read_after && jumped_object)
        printf("read after longjmp: %ld\n", ((volatile long *)jumped_object)[0]);
    return 0;
}

static void signal_jumper(int sig)
{
    (void)sig;
    siglongjmp(signal_env, 1);
}

NOINL long sl_work(int call, int raise_it)
{
    long *p = malloc(48);
    if (p == NULL)
        fail("sl_work malloc");
    p[0] = call;
    escaped = p;
    if (raise_it)
        raise(SIGUSR1);
    return p[0];
}

/* mt siglongjmp N ALT READ: sl_work raises SIGUSR1 on every other call; the handler (on an
 * alternate signal stack when ALT=1) siglongjmps back into the loop. */
static int mode_siglongjmp(int calls, int alt, int read_after)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = signal_jumper;
    sigemptyset(&action.sa_mask);
    if (alt) {
        stack_t stack;
        stack.ss_sp = malloc(1 << 16);
        stack.ss_size = 1 << 16;
        stack.ss_flags = 0;
        if (stack.ss_sp == NULL || sigaltstack(&stack, NULL) != 0)
            fail("sigaltstack: %s", strerror(errno));
        action.sa_flags = SA_ONSTACK;
    }
    if (sigaction(SIGUSR1, &action, NULL) != 0)
        fail("sigaction");
    long total = 0;
    int jumped = 0;
    void *jumped_object = NULL;
    for (volatile int i = 0; i < calls; i++) {
        if (sigsetjmp(signal_env, 1) == 0) {
            total += sl_work(i, i % 2);
        } else {
            jumped++;
            jumped_object = escaped;
        }
    }
    for (int i = 0; i < 3; i++)
        total += sl_work(1000 + i, 0);
    printf("siglongjmp calls=%d jumped=%d total=%ld\n", calls, jumped, total);
    fflush(stdout);
    if (read_after && jumped_object)
        printf("read after siglongjmp: %ld\n", ((volatile long *)jumped_object)[0]);
    return 0;
}

/* --- threads -------------------------------------------------------------------------- */

struct thread_job {
    int id, calls, count;
    long total;
};

NOINL long thread_work(int thread, int call, int count)
{
    long *objects[32];
    if (count > 32)
        count = 32;
    for (int i = 0; i < count; i++) {
        size_t n = 4 + (size_t)((i * 5 + call) % 30);
        objects[i] = malloc(n * sizeof(long));
        if (objects[i] == NULL)
            fail("thread_work malloc");
        objects[i][0] = (long)n;
        for (size_t k = 1; k < n; k++)
            objects[i][k] = ((long)thread << 40) ^ ((long)call << 20) ^ (long)(i * 1000 + k);
    }
    long sum = 0;
    for (int i = 0; i < count; i++) {
        size_t n = (size_t)objects[i][0];
        for (size_t k = 1; k < n; k++) {
            long expected = ((long)thread << 40) ^ ((long)call << 20) ^ (long)(i * 1000 + k);
            if (objects[i][k] != expected)
                fail("thread %d call %d object %d word %zu: %lx, expected %lx (another thread's "
                     "data?)", thread, call, i, k, (unsigned long)objects[i][k], (unsigned long)expected);
            sum += objects[i][k] & 0xffff;
        }
    }
    return sum;
}

static void *thread_main(void *argument)
{
    struct thread_job *job = argument;
    for (int c = 0; c < job->calls; c++)
        job->total += thread_work(job->id, c, job->count);
    return NULL;
}

static int mode_threads(int threads, int calls, int count)
{
    pthread_t ids[64];
    struct thread_job jobs[64];
    if (threads > 64)
        threads = 64;
    for (int t = 0; t < threads; t++) {
        jobs[t] = (struct thread_job){ t, calls, count, 0 };
        if (pthread_create(&ids[t], NULL, thread_main, &jobs[t]) != 0)
            fail("pthread_create");
    }
    long total = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(ids[t], NULL);
        total += jobs[t].total;
    }
    printf("threads=%d calls=%d objects=%d total=%ld\n", threads, calls, count, total);
    return 0;
}

/* --- arguments ------------------------------------------------------------------------ */

struct pass24 { long a; double b; int c; };       /* 24 bytes: passed in memory */
struct pass16 { double x; double y; };            /* in two xmm registers, or on the stack */

/* 16 arguments: 6 integer registers, 8 xmm registers, then doubles, integers and structs on
 * the stack. */
NOINL double args_many(long a1, double d1, long a2, double d2, long a3, double d3, long a4,
                       double d4, long a5, double d5, long a6, double d6, double d7, double d8,
                       double d9_stack, long a7_stack, struct pass24 s_stack, float f_stack,
                       struct pass16 p_stack, char c_stack)
{
    double *copy = malloc(16 * sizeof(double));
    if (copy == NULL)
        fail("args_many malloc");
    double values[16] = { d1, d2, d3, d4, d5, d6, d7, d8, d9_stack, s_stack.b, f_stack, p_stack.x,
                          p_stack.y, 0, 0, 0 };
    memcpy(copy, values, sizeof values);
    double s = 0;
    for (int i = 0; i < 13; i++)
        s += copy[i] * (i + 1);
    long integers = a1 + 2 * a2 + 3 * a3 + 4 * a4 + 5 * a5 + 6 * a6 + 7 * a7_stack + 8 * s_stack.a +
                    9 * s_stack.c + 10 * c_stack;
    return s + (double)integers;
}

static int mode_args(int calls)
{
    for (int i = 0; i < calls; i++) {
        struct pass24 s = { 1000 + i, 0.125 * i, -i };
        struct pass16 p = { 1.0 / (i + 3), -2.0 * i };
        double r = args_many(seed + i, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 5.5, 6, 6.5, 7.5, 8.5,
                             9.5 + i, 77 + i, s, 0.75f * i, p, (char)('a' + i % 26));
        printf("args call=%d result=%a\n", i, r);
    }
    return 0;
}

/* A printf-like marker: its prologue saves xmm0-7 only when al says vector registers hold
 * arguments, so the hook must keep al. */
NOINL int format_into(char *out, size_t len, const char *format, ...)
{
    char *buffer = malloc(256);
    if (buffer == NULL)
        fail("format_into malloc");
    va_list args;
    va_start(args, format);
    int n = vsnprintf(buffer, 256, format, args);
    va_end(args);
    snprintf(out, len, "[%s]", buffer);
    free(buffer);
    return n;
}

static int mode_variadic(int calls)
{
    char line[300];
    for (int i = 0; i < calls; i++) {
        int n = format_into(line, sizeof line, "%d %.17g %s %.17g %ld %.17g %.17g %.17g %.17g %.17g %.17g %c",
                            i, 0.1 * (i + seed), "str", -1e100 / (i + 1), 123456789012L * i, 2.5, 3.25,
                            4.125, 5.0625, 6.03125, 7.015625 + i, 'Z');
        printf("variadic %d: %s\n", n, line);
    }
    return 0;
}

/* A leaf with locals: GCC keeps them in the red zone below the stack pointer. */
NOINL long redzone_leaf(long x, long y)
{
    volatile long locals[12];
    for (int i = 0; i < 12; i++)
        locals[i] = x * i + y;
    long s = 0;
    for (int i = 11; i >= 0; i--)
        s = s * 3 + locals[i];
    return s;
}

static int mode_redzone(int calls)
{
    long total = 0;
    for (int i = 0; i < calls; i++)
        total += redzone_leaf(i + seed, 2 * i);
    printf("redzone calls=%d total=%ld\n", calls, total);
    return 0;
}

/* --- a marker that leaves by a tail call ------------------------------------------------ */

NOINL long tail_target(long call)
{
    long *p = malloc(24);
    if (p == NULL)
        fail("tail_target malloc");
    p[0] = call;
    p[1] = call + 1;
    p[2] = call + 2;
    escaped = p;
    return p[0] + p[1] + p[2];
}

/* -O2 makes this "add; jmp tail_target": the region ends when tail_target returns. */
NOINL long tail_caller(long call)
{
    return tail_target(call * 2 + seed);
}

static int mode_tailcall(int calls, int read_after)
{
    long total = 0;
    for (int i = 0; i < calls; i++)
        total += tail_caller(i);
    printf("tailcall calls=%d total=%ld\n", calls, total);
    fflush(stdout);
    if (read_after)
        printf("read after return: %ld\n", ((volatile long *)escaped)[0]);
    return 0;
}

/* --- signal handlers that call marked functions ---------------------------------------- */

static volatile long handler_result;

NOINL long sig_inner(int call)
{
    long *p = malloc(10 * sizeof(long));
    if (p == NULL)
        abort(); /* malloc is not async-signal-safe in general; glibc's and arenashim's cope here */
    for (int i = 0; i < 10; i++)
        p[i] = call * 10 + i;
    long s = 0;
    for (int i = 0; i < 10; i++)
        s += p[i];
    return s;
}

static void nested_handler(int sig)
{
    (void)sig;
    handler_result += sig_inner((int)handler_result % 100);
}

NOINL long sig_outer(int call)
{
    long *mine = malloc(8 * sizeof(long));
    if (mine == NULL)
        fail("sig_outer malloc");
    for (int i = 0; i < 8; i++)
        mine[i] = call + i;
    raise(SIGUSR2); /* the handler runs a marked function, on this stack or the alternate one */
    for (int i = 0; i < 8; i++)
        if (mine[i] != call + i)
            fail("sig_outer: object changed across the handler");
    return mine[7];
}

/* mt signal_nested N ALT: sig_outer raises SIGUSR2, whose handler calls sig_inner. */
static int mode_signal_nested(int calls, int alt)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = nested_handler;
    sigemptyset(&action.sa_mask);
    if (alt) {
        static char alt_stack[1 << 16];
        stack_t stack = { .ss_sp = alt_stack, .ss_size = sizeof alt_stack, .ss_flags = 0 };
        if (sigaltstack(&stack, NULL) != 0)
            fail("sigaltstack");
        action.sa_flags = SA_ONSTACK;
    }
    sigaction(SIGUSR2, &action, NULL);
    long total = 0;
    for (int i = 0; i < calls; i++)
        total += sig_outer(i);
    printf("signal_nested calls=%d total=%ld handler=%ld\n", calls, total, (long)handler_result);
    return 0;
}

/* --- threads that end inside a marked function ------------------------------------------ */

NOINL void exiting_work(long id)
{
    long *p = malloc(4 * sizeof(long));
    if (p == NULL)
        fail("exiting_work malloc");
    p[0] = id * 3;
    pthread_exit((void *)(p[0] + 1));
}

static void *exiting_main(void *argument)
{
    exiting_work((long)argument);
    return NULL;
}

NOINL long cancelled_work(long id)
{
    long *p = malloc(4 * sizeof(long));
    if (p == NULL)
        fail("cancelled_work malloc");
    p[0] = id;
    for (;;)
        pause(); /* a cancellation point */
    return p[0];
}

static void *cancelled_main(void *argument)
{
    return (void *)cancelled_work((long)argument);
}

/* mt pthread_exit N: N threads leave through pthread_exit inside exiting_work; then N threads
 * are cancelled inside cancelled_work; then the main thread calls both kinds' siblings. */
static int mode_pthread_exit(int threads)
{
    long total = 0;
    for (int round = 0; round < 2; round++) {
        pthread_t ids[64];
        if (threads > 64)
            threads = 64;
        for (long t = 0; t < threads; t++)
            if (pthread_create(&ids[t], NULL, round == 0 ? exiting_main : cancelled_main, (void *)t) != 0)
                fail("pthread_create");
        for (int t = 0; t < threads; t++) {
            void *value;
            if (round == 1) {
                usleep(2000);
                pthread_cancel(ids[t]);
            }
            pthread_join(ids[t], &value);
            if (round == 0)
                total += (long)value;
            else if (value != PTHREAD_CANCELED)
                fail("thread %d was not cancelled", t);
        }
    }
    total += static_work(1, 3, 0);
    printf("pthread_exit threads=%d total=%ld\n", threads, total);
    return 0;
}

/* --- exit() inside a marked function -------------------------------------------------- */

static long *exit_object;

static void at_exit_reader(void)
{
    /* The region of exiting_main_work never returned: its object is still there. */
    printf("at exit: %ld %ld\n", exit_object[0], exit_object[5]);
    fflush(stdout);
}

NOINL void exit_inside(int code)
{
    exit_object = malloc(6 * sizeof(long));
    if (exit_object == NULL)
        fail("exit_inside malloc");
    for (int i = 0; i < 6; i++)
        exit_object[i] = 11 * i + code;
    atexit(at_exit_reader);
    exit(code);
}

/* --- backtrace() through marked frames -------------------------------------------------- */

#include <dlfcn.h>
#include <execinfo.h>

static void print_frames(void **frames, int n)
{
    for (int i = 0; i < n; i++) {
        Dl_info info;
        const char *name = "?";
        if (dladdr(frames[i], &info) && info.dli_sname)
            name = info.dli_sname;
        printf("%s%s", i ? " < " : "  ", name);
    }
    printf("\n");
}

NOINL int bt_inner(int depth)
{
    void *frames[32];
    int n = backtrace(frames, 32);
    char *unused = malloc(16);
    free(unused);
    printf("bt depth=%d frames=%d\n", depth, n);
    print_frames(frames, n);
    return n;
}

NOINL int bt_middle(int depth)
{
    int n = bt_inner(depth + 1);
    sink += n;
    return n + 1;
}

NOINL int bt_outer(int depth)
{
    int n = bt_middle(depth + 1);
    sink += n;
    return n + 1;
}

/* --- a marked C library function that calls back into the program ---------------------- */

static long comparisons;

static int compare_allocating(const void *a, const void *b)
{
    /* Each comparison allocates scratch: inside qsort's region. */
    char *scratch = malloc(32);
    if (scratch == NULL)
        fail("comparator malloc");
    snprintf(scratch, 32, "%s", *(char *const *)a);
    int r = strcmp(scratch, *(char *const *)b);
    comparisons++;
    return r;
}

/* mt qsort N: sorts N strings made outside any region, twice. */
static int mode_qsort(int n)
{
    char **strings = malloc(sizeof(char *) * (size_t)n);
    if (strings == NULL)
        fail("malloc");
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < n; i++) {
            strings[i] = malloc(16);
            snprintf(strings[i], 16, "s%07d", (i * 7919 + round) % 100003);
        }
        qsort(strings, (size_t)n, sizeof(char *), compare_allocating);
        for (int i = 1; i < n; i++)
            if (strcmp(strings[i - 1], strings[i]) > 0)
                fail("qsort: not sorted at %d", i);
        printf("qsort round %d: first %s last %s\n", round, strings[0], strings[n - 1]);
    }
    printf("comparisons=%ld\n", comparisons);
    return 0;
}

/* --- processes ------------------------------------------------------------------------ */

/* mt fork N: the child calls static_work N times (10 objects each) and exits 0 when every
 * object checked out; the parent calls it before and after. */
static int mode_fork(int calls)
{
    long before = static_work(1, 10, 0);
    fflush(stdout);
    pid_t child = fork();
    if (child < 0)
        fail("fork: %s", strerror(errno));
    if (child == 0) {
        long total = 0;
        for (int i = 0; i < calls; i++)
            total += static_work(i, 10, 0);
        printf("child calls=%d total=%ld\n", calls, total);
        fflush(stdout);
        exit(0);
    }
    int status;
    if (waitpid(child, &status, 0) != child)
        fail("waitpid");
    long after = static_work(2, 10, 0);
    printf("parent before=%ld after=%ld child_status=%s %d\n", before, after,
           WIFEXITED(status) ? "exit" : "signal", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("the child did not exit 0");
    return 0;
}

/* mt system: a shell inherits ARENASHIM_REGIONS; it lacks the marked function. */
static int mode_system(void)
{
    long sum = static_work(3, 5, 0);
    fflush(stdout);
    int status = system("/bin/sh -c 'echo hi'");
    printf("sum=%ld system status=%d\n", sum, status);
    if (status != 0)
        fail("system() returned %d", status);
    return 0;
}

int main(int argc, char **argv)
{
    seed = 7 + (argc > 100);
    const char *mode = argc > 1 ? argv[1] : "";
#define ARG(i, fallback) (argc > (i) ? atoi(argv[i]) : (fallback))
    if (strcmp(mode, "alloc") == 0 && argc > 2)
        return mode_alloc(argv[2], ARG(3, 10), ARG(4, 5));
    if (strcmp(mode, "escape") == 0 && argc > 2)
        return mode_escape(argv[2], ARG(3, 1));
    if (strcmp(mode, "read_escaped") == 0)
        return mode_read_escaped();
    if (strcmp(mode, "write_escaped") == 0)
        return mode_write_escaped();
    if (strcmp(mode, "returns") == 0)
        return mode_returns();
    if (strcmp(mode, "recurse") == 0)
        return mode_recurse(ARG(2, 10), ARG(3, 20));
    if (strcmp(mode, "nest") == 0)
        return mode_nest(ARG(2, 10), ARG(3, 0));
    if (strcmp(mode, "longjmp") == 0)
        return mode_longjmp(ARG(2, 12), ARG(3, 0));
    if (strcmp(mode, "siglongjmp") == 0)
        return mode_siglongjmp(ARG(2, 12), ARG(3, 0), ARG(4, 0));
    if (strcmp(mode, "threads") == 0)
        return mode_threads(ARG(2, 8), ARG(3, 200), ARG(4, 10));
    if (strcmp(mode, "args") == 0)
        return mode_args(ARG(2, 5));
    if (strcmp(mode, "variadic") == 0)
        return mode_variadic(ARG(2, 5));
    if (strcmp(mode, "redzone") == 0)
        return mode_redzone(ARG(2, 10));
    if (strcmp(mode, "tailcall") == 0)
        return mode_tailcall(ARG(2, 10), ARG(3, 0));
    if (strcmp(mode, "signal_nested") == 0)
        return mode_signal_nested(ARG(2, 10), ARG(3, 0));
    if (strcmp(mode, "pthread_exit") == 0)
        return mode_pthread_exit(ARG(2, 4));
    if (strcmp(mode, "exit_inside") == 0) {
        printf("exit_inside\n");
        exit_inside(ARG(2, 0));
    }
    if (strcmp(mode, "backtrace") == 0) {
        int n = bt_outer(0);
        printf("backtrace returned %d\n", n);
        return 0;
    }
    if (strcmp(mode, "qsort") == 0)
        return mode_qsort(ARG(2, 1000));
    if (strcmp(mode, "fork") == 0)
        return mode_fork(ARG(2, 20));
    if (strcmp(mode, "system") == 0)
        return mode_system();
    if (strcmp(mode, "plain") == 0) {
        printf("plain\n");
        return 0;
    }
    fprintf(stderr, "usage: mt alloc|escape|returns|recurse|nest|longjmp|siglongjmp|threads|args|"
                    "variadic|redzone|tailcall|fork|system|write_escaped|read_escaped|plain [ARGS...]\n");
    return 64;
}
