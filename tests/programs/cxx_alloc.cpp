// cxx_alloc.cpp — C++ allocation through arenashim, outside or inside a region.
//
//   cxx_alloc outside | inside
//
// new/delete, new[]/delete[], over-aligned new (alignas(256)), nothrow new, sized delete,
// std::vector / std::string / std::map growth.  Inside a region the objects must be region
// objects and region_allocs must grow; outside, none may be.  Prints "OK cxx_alloc-MODE" and
// a checksum that must not depend on the mode.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "testutil.h"

static bool inside;

#define CHECK_ROUTED(p) \
    CHECKF(in_region(p) == (inside && shim_present()), "%s in_region=%d", #p, in_region(p))

struct alignas(256) Wide {
    unsigned char bytes[300];
};

struct alignas(4096) Paged {
    int value;
};

struct Node {
    Node *next;
    long value;
    std::string label;
};

template <typename T> static T *escape(T *p)
{
    return static_cast<T *>(opaque_ptr(const_cast<void *>(static_cast<const void *>(p))));
}

static unsigned long long checksum = 1469598103934665603ull;

static void mix(const void *data, size_t n)
{
    const unsigned char *b = static_cast<const unsigned char *>(data);
    for (size_t i = 0; i < n; i++)
        checksum = (checksum ^ b[i]) * 1099511628211ull;
}

static void test_new_delete()
{
    int *one = escape(new int(42));
    CHECK(*one == 42);
    CHECK_ROUTED(one);
    delete one;

    long *many = escape(new long[1000]());
    CHECK(many[0] == 0 && many[999] == 0);
    CHECK_ROUTED(many);
    for (int i = 0; i < 1000; i++)
        many[i] = i;
    mix(many, 1000 * sizeof(long));
    delete[] many;

    for (int i = 0; i < 50; i++) {
        Wide *w = escape(new Wide);
        CHECKF((reinterpret_cast<uintptr_t>(w) & 255) == 0, "alignas(256) new gave %p", (void *)w);
        std::memset(w->bytes, i, sizeof w->bytes);
        CHECK_ROUTED(w);
        delete w;
    }
    Wide *wa = escape(new Wide[7]);
    CHECK((reinterpret_cast<uintptr_t>(wa) & 255) == 0);
    std::memset(wa, 1, sizeof(Wide) * 7);
    CHECK_ROUTED(wa);
    delete[] wa;

    Paged *pg = escape(new Paged{ 5 });
    CHECK((reinterpret_cast<uintptr_t>(pg) & 4095) == 0 && pg->value == 5);
    CHECK_ROUTED(pg);
    delete pg;

    Wide *wn = escape(new (std::nothrow) Wide);
    CHECK(wn != nullptr && (reinterpret_cast<uintptr_t>(wn) & 255) == 0);
    ::operator delete(wn, std::align_val_t(256), std::nothrow);

    int *n = escape(new (std::nothrow) int[100]);
    CHECK(n != nullptr);
    CHECK_ROUTED(n);
    delete[] n;

    // nothrow new of an impossible size: nullptr, no crash
    size_t huge = opaque_size(SIZE_MAX / 2);
    char *none = escape(new (std::nothrow) char[huge]);
    CHECK(none == nullptr);

    bool threw = false;
    try {
        char *never = escape(new char[opaque_size(SIZE_MAX / 4)]);
        delete[] never;
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK(threw);

    // sized delete, raw operator new
    void *raw = escape(::operator new(opaque_size(777)));
    std::memset(raw, 7, 777);
    CHECK_ROUTED(raw);
    ::operator delete(raw, 777);
    void *raw_aligned = escape(::operator new(opaque_size(1000), std::align_val_t(1024)));
    CHECK((reinterpret_cast<uintptr_t>(raw_aligned) & 1023) == 0);
    std::memset(raw_aligned, 8, 1000);
    CHECK_ROUTED(raw_aligned);
    ::operator delete(raw_aligned, 1000, std::align_val_t(1024));

    auto u = std::make_unique<Node>();
    u->label = "a label long enough to need the heap, not the small-string buffer";
    CHECK_ROUTED(u.get());
    CHECK_ROUTED(u->label.data());
    mix(u->label.data(), u->label.size());
}

static void test_containers()
{
    std::vector<int> v;
    for (int i = 0; i < 100000; i++)
        v.push_back(i * 3);
    CHECK(v.size() == 100000 && v[99999] == 299997);
    CHECK_ROUTED(v.data());
    mix(v.data(), v.size() * sizeof(int));

    std::string s;
    for (int i = 0; i < 5000; i++)
        s += std::to_string(i);
    CHECK(s.size() > 10000);
    CHECK_ROUTED(s.data());
    mix(s.data(), s.size());

    std::map<std::string, std::vector<long>> m;
    for (int i = 0; i < 3000; i++) {
        auto &entry = m["key-" + std::to_string(i % 700) + "-with-a-long-suffix"];
        entry.push_back(i);
    }
    CHECK(m.size() == 700);
    size_t total = 0;
    for (auto &kv : m) {
        total += kv.second.size();
        mix(kv.first.data(), kv.first.size());
        mix(kv.second.data(), kv.second.size() * sizeof(long));
    }
    CHECK(total == 3000);
    CHECK_ROUTED(m.begin()->second.data());

    // A linked structure built and torn down.
    Node *head = nullptr;
    for (long i = 0; i < 2000; i++)
        head = new Node{ head, i, std::string(static_cast<size_t>(i % 40 + 20), 'n') };
    long sum = 0;
    while (head) {
        Node *next = head->next;
        sum += head->value + static_cast<long>(head->label.size());
        delete head;
        head = next;
    }
    CHECKF(sum == 1999000 + 2000 * 20 + 50 * 780, "sum %ld", sum);
    mix(&sum, sizeof sum);
}

int main(int argc, char **argv)
{
    inside = argc > 1 && std::strcmp(argv[1], "inside") == 0;
    long long before = stats_counter("region_allocs");
    if (inside)
        CHECK(!shim_present() || region_begin() == 1);
    test_new_delete();
    test_containers();
    if (inside)
        region_end();
    long long after = stats_counter("region_allocs");
    if (shim_present()) {
        if (inside)
            CHECKF(after - before >= 2000, "region_allocs grew by %lld", after - before);
        else
            CHECKF(after == before, "region_allocs grew by %lld outside regions", after - before);
    }
    // Objects made after the region are heap objects again.
    std::vector<std::string> later(100, std::string(100, 'z'));
    CHECK(!in_region(later.data()) && !in_region(later[50].data()));
    std::printf("checksum %016llx\n", checksum);
    return finish(inside ? "cxx_alloc-inside" : "cxx_alloc-outside");
}
