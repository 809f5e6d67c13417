// discover_unwind.cpp — frames left without returning, for `scripts/arenashim discover`.
//
//   discover_unwind longjmp|throw [ROUNDS]
//
// Knows nothing of arenashim.  handle_job (called ROUNDS times) allocates a list, then calls
// deep_work, which allocates more and leaves by longjmp (C) or by a C++ exception through
// throwing_work, never returning normally.  handle_job frees everything after that: the
// objects made in deep_work or throwing_work outlive the frames that made them (escapes), and
// none outlives handle_job (clean).  The frames followed inside the left calls must not be
// taken for live ones, and nothing may crash.  Prints "OK discover_unwind MODE".
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#define NOINLINE __attribute__((noinline))

struct item {
    item *next;
    unsigned long value;
};

static std::jmp_buf escape_point;
static unsigned long checksum;

static NOINLINE item *push(item *list, unsigned long value)
{
    item *i = static_cast<item *>(std::malloc(sizeof *i));
    i->next = list;
    i->value = value;
    return i;
}

static NOINLINE void release(item *list)
{
    while (list) {
        item *next = list->next;
        checksum += list->value;
        std::free(list);
        list = next;
    }
}

static item *pending; // what the left frames made, freed by handle_job

extern "C" NOINLINE void deep_work(unsigned round, unsigned depth)
{
    pending = push(pending, round * 100 + depth);
    if (depth == 0)
        std::longjmp(escape_point, 1);
    deep_work(round, depth - 1);
    std::puts("unreachable");
}

NOINLINE void throwing_work(unsigned round, unsigned depth)
{
    pending = push(pending, round * 100 + depth);
    if (depth == 0)
        throw std::runtime_error("left by an exception");
    throwing_work(round, depth - 1);
    std::puts("unreachable");
}

extern "C" NOINLINE void handle_job(unsigned round, bool use_throw)
{
    item *own = nullptr;
    for (unsigned i = 0; i < 5; i++)
        own = push(own, round + i);
    pending = nullptr;
    if (use_throw) {
        try {
            throwing_work(round, 4);
        } catch (const std::runtime_error &) {
            checksum += 1;
        }
    } else if (setjmp(escape_point) == 0) {
        deep_work(round, 4);
    }
    release(pending);
    release(own);
}

int main(int argc, char **argv)
{
    if (argc < 2 || (std::strcmp(argv[1], "longjmp") != 0 && std::strcmp(argv[1], "throw") != 0)) {
        std::fprintf(stderr, "usage: discover_unwind longjmp|throw [ROUNDS]\n");
        return 2;
    }
    bool use_throw = std::strcmp(argv[1], "throw") == 0;
    unsigned rounds = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : 300;
    for (unsigned round = 0; round < rounds; round++)
        handle_job(round, use_throw);
    std::printf("checksum %lu\nOK discover_unwind %s\n", checksum, argv[1]);
    return 0;
}
