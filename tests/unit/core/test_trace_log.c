/*
 * test_trace_log.c — the allocation records of traced regions (core/trace_log.c) and the
 * size-class metadata they use (core/metadata.c).
 *
 * A sealed log answers "which object holds this address?" from its sorted index with the
 * same answer a walk over every record gives: the newest object that contains the address,
 * its header included.  Logs of a block or two are not indexed.
 */
#include "check.h"
#include "trace_log.h"

/* The answer of a walk over every record: the newest containing address. */
static struct trace_record *reference_find(struct trace_block *head, uintptr_t address)
{
    struct trace_record *best = NULL;
    for (struct trace_block *block = head; block; block = block->next)
        for (uint32_t i = 0; i < block->count; i++) {
            struct trace_record *r = &block->records[i];
            uintptr_t first = r->address - OBJECT_HEADER_SIZE;
            if (address >= first && address - first < OBJECT_HEADER_SIZE + (r->size ? r->size : 1) &&
                (best == NULL || r->sequence > best->sequence))
                best = r;
        }
    return best;
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* A region's log: objects bumped through several "chunks" visited out of address order, some
 * undone and their bytes handed out again (two records at one address). */
static struct trace_block *make_log(unsigned objects, uintptr_t *low, uintptr_t *high)
{
    struct trace_block *head = NULL;
    static const uintptr_t chunks[] = { 0x7f0000500000, 0x7f0000100000, 0x7f0000300000, 0x7f0000200000 };
    uintptr_t cursor = chunks[0] + 16;
    unsigned chunk = 0;
    *low = chunks[1];
    *high = chunks[2] + (1 << 20);
    for (unsigned i = 0; i < objects; i++) {
        size_t size = 1 + rng() % 200;
        if (cursor + size + 32 > chunks[chunk] + (1 << 20)) {
            chunk = (chunk + 1) % 4;
            cursor = chunks[chunk] + 16;
        }
        REQUIRE(trace_log_append(&head, cursor, size, i + 1));
        if (rng() % 10 != 0) /* one in ten is undone: the next object takes its place */
            cursor += ((size + 15) & ~(size_t)15) + OBJECT_HEADER_SIZE;
    }
    return head;
}

static void test_sealed_index_matches_walk(void)
{
    test_setup("");
    uintptr_t low, high;
    struct trace_block *head = make_log(20000, &low, &high);
    CHECK_EQ(head->total, 20000);
    trace_log_seal(head);
    REQUIRE(head->index != NULL);
    CHECK_EQ(head->index_count, 20000);
    for (uint32_t i = 1; i < head->index_count; i++) {
        const struct trace_record *a = head->index[i - 1], *b = head->index[i];
        CHECK(a->address < b->address || (a->address == b->address && a->sequence < b->sequence));
    }
    unsigned hits = 0;
    for (unsigned probe = 0; probe < 200000; probe++) {
        uintptr_t address = low + rng() % (high - low);
        struct trace_record *expected = reference_find(head, address);
        CHECK_MSG(trace_log_find(head, address) == expected, "address %#lx", (unsigned long)address);
        hits += expected != NULL;
    }
    CHECK(hits > 1000);
    /* Exact edges: the header's first byte, the object's last byte, one past it. */
    const struct trace_record *r = head->index[head->index_count / 2];
    CHECK(trace_log_find(head, r->address - OBJECT_HEADER_SIZE) != NULL);
    CHECK(trace_log_find(head, r->address + r->size - 1) != NULL);
    trace_log_release(head);
}

static void test_small_log_is_walked(void)
{
    test_setup("");
    uintptr_t low, high;
    struct trace_block *head = make_log(40, &low, &high);
    trace_log_seal(head);
    CHECK(head->index == NULL);
    for (unsigned probe = 0; probe < 20000; probe++) {
        uintptr_t address = 0x7f0000500000 + rng() % 8192;
        CHECK(trace_log_find(head, address) == reference_find(head, address));
    }
    trace_log_release(head);
}

static void test_metadata_size_classes(void)
{
    test_setup("");
    /* Zeroed, reused by class after a free, and large sizes served too. */
    char *a = metadata_alloc(100);
    REQUIRE(a != NULL);
    for (int i = 0; i < 100; i++)
        CHECK_EQ(a[i], 0);
    memset(a, 7, 128);
    metadata_free(a, 100);
    char *b = metadata_alloc(120);
    CHECK(b == a);
    CHECK_EQ(b[5], 0);
    char *big = metadata_alloc((size_t)3 << 20);
    REQUIRE(big != NULL);
    big[(3 << 20) - 1] = 1;
    char *big2 = metadata_alloc((size_t)3 << 20);
    REQUIRE(big2 != NULL && big2 != big);
    metadata_free(big, (size_t)3 << 20);
    CHECK(metadata_alloc((size_t)4 << 20) == big);
    CHECK(metadata_alloc((size_t)1 << 40) == NULL);
}

static const struct test_case cases[] = {
    TEST_CASE(sealed_index_matches_walk),
    TEST_CASE(small_log_is_walked),
    TEST_CASE(metadata_size_classes),
};

int main(int argc, char **argv)
{
    return check_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
