/*
 * mtx.cpp — C++ exceptions through marked functions, for tests/markers/run.py.
 * Knows nothing about arenashim.
 *
 * Usage: mtx MODE [N]
 *   throw N        thrower(i) throws on odd calls (int, or a struct of ints) and the caller
 *                  catches; destructors of thrower's locals read region memory while the
 *                  stack unwinds; even calls return normally.
 *   catch_inside N catcher(i) throws and catches inside itself, then keeps using its objects
 *   escape         thrower leaks an object and throws; the caller reads it after the catch
 *                  (the region is over: it must fault)
 *   nested N       outer_x (marked) calls inner_x (marked) which throws; outer_x catches,
 *                  checks its own objects, and rethrows to main
 *   newdelete N    operator new/delete and std::vector inside a marked function
 * Exit status 0 when every check held, 3 otherwise.
 */
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#define NOINL __attribute__((noinline, noclone))

[[noreturn]] static void fail(const char *message, long a = 0, long b = 0)
{
    std::fprintf(stderr, "mtx: check failed: %s (%ld, %ld)\n", message, a, b);
    std::fflush(stdout);
    std::_Exit(3);
}

struct error_code {
    int code;
    int detail[3];
};

volatile int seed = 3;
void *volatile escaped;
long destructor_sum;
int destructors_run;

/* A local whose destructor reads the region object it guards. */
struct guard {
    long *object;
    long expected;
    explicit guard(long *o, long e) : object(o), expected(e) {}
    ~guard()
    {
        if (object[0] != expected || object[7] != expected + 7)
            fail("destructor sees changed region memory", object[0], expected);
        destructor_sum += object[0] + object[7];
        destructors_run++;
    }
};

static long *make_object(long value)
{
    long *o = static_cast<long *>(std::malloc(8 * sizeof(long)));
    if (o == nullptr)
        fail("malloc");
    for (int i = 0; i < 8; i++)
        o[i] = value + i;
    return o;
}

NOINL void throw_something(int call)
{
    if (call % 4 == 1)
        throw 42 + call;
    error_code e = { call, { 1, 2, 3 } };
    throw e;
}

NOINL long thrower(int call, bool escape)
{
    long *a = make_object(call * 100L);
    guard g1(a, call * 100L);
    long *b = make_object(call * 100L + 50);
    guard g2(b, call * 100L + 50);
    if (escape)
        escaped = a;
    if (call % 2 == 1)
        throw_something(call);
    return a[1] + b[1];
}

static int mode_throw(int calls)
{
    long total = 0;
    int caught_int = 0, caught_struct = 0;
    for (int i = 0; i < calls; i++) {
        try {
            total += thrower(i, false);
        } catch (int value) {
            if (value != 42 + i)
                fail("caught the wrong int", value, i);
            caught_int++;
        } catch (const error_code &e) {
            if (e.code != i || e.detail[2] != 3)
                fail("caught a damaged struct", e.code, i);
            caught_struct++;
        }
    }
    /* The marker still works after the exceptions. */
    for (int i = 0; i < 4; i++)
        total += thrower(2 * i, false);
    std::printf("throw calls=%d total=%ld caught_int=%d caught_struct=%d destructors=%d sum=%ld\n",
                calls, total, caught_int, caught_struct, destructors_run, destructor_sum);
    return 0;
}

NOINL long catcher(int call)
{
    long *a = make_object(call * 10L);
    long result = 0;
    try {
        long *b = make_object(call * 10L + 5);
        guard g(b, call * 10L + 5);
        throw_something(call | 1);
    } catch (int value) {
        result = value;
    } catch (const error_code &e) {
        result = e.code * 1000;
    }
    /* The region is still open: the objects made before the throw are intact. */
    long *c = make_object(call * 10L + 9);
    for (int i = 0; i < 8; i++)
        if (a[i] != call * 10L + i || c[i] != call * 10L + 9 + i)
            fail("catch inside: object changed after the catch", call, i);
    return result + a[3] + c[3];
}

static int mode_catch_inside(int calls)
{
    long total = 0;
    for (int i = 0; i < calls; i++)
        total += catcher(i);
    std::printf("catch_inside calls=%d total=%ld destructors=%d\n", calls, total, destructors_run);
    return 0;
}

static int mode_escape()
{
    try {
        thrower(1, true);
    } catch (int value) {
        std::printf("caught %d\n", value);
    } catch (const error_code &e) {
        std::printf("caught code %d\n", e.code);
    }
    std::fflush(stdout);
    std::printf("read after catch: %ld\n", static_cast<volatile long *>(escaped)[0]);
    return 0;
}

NOINL long inner_x(int call)
{
    long *o = make_object(call + 7L);
    guard g(o, call + 7L);
    throw_something(call * 2 + 1);
    return o[0];
}

NOINL long outer_x(int call)
{
    long *mine = make_object(call * 1000L);
    try {
        return inner_x(call);
    } catch (...) {
        for (int i = 0; i < 8; i++)
            if (mine[i] != call * 1000L + i)
                fail("outer region object changed after the inner frame unwound", call, i);
        if (call % 2 == 0)
            throw; /* rethrow to main */
    }
    return mine[2];
}

static int mode_nested(int calls)
{
    long total = 0;
    int rethrown = 0;
    for (int i = 0; i < calls; i++) {
        try {
            total += outer_x(i);
        } catch (...) {
            rethrown++;
        }
    }
    std::printf("nested calls=%d total=%ld rethrown=%d destructors=%d\n", calls, total, rethrown,
                destructors_run);
    return 0;
}

NOINL long vector_work(int call)
{
    std::vector<long> v;
    for (int i = 0; i < 100 + call; i++)
        v.push_back(i * call);
    long *array = new long[50];
    for (int i = 0; i < 50; i++)
        array[i] = v[i];
    long s = 0;
    for (long x : v)
        s += x;
    s += array[49];
    delete[] array;
    return s;
}

static int mode_newdelete(int calls)
{
    long total = 0;
    for (int i = 0; i < calls; i++)
        total += vector_work(i);
    std::printf("newdelete calls=%d total=%ld\n", calls, total);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    int n = argc > 2 ? std::atoi(argv[2]) : 10;
    if (std::strcmp(mode, "throw") == 0)
        return mode_throw(n);
    if (std::strcmp(mode, "catch_inside") == 0)
        return mode_catch_inside(n);
    if (std::strcmp(mode, "escape") == 0)
        return mode_escape();
    if (std::strcmp(mode, "nested") == 0)
        return mode_nested(n);
    if (std::strcmp(mode, "newdelete") == 0)
        return mode_newdelete(n);
    std::fprintf(stderr, "usage: mtx throw|catch_inside|escape|nested|newdelete [N]\n");
    return 64;
}
