/*
 * test_revoke_batch.c — revoke_batch=N: regions hand their chunk on unfaulted, as with
 * partial_reuse, and every N region ends of a thread revoke what its regions left dead, in
 * one call per chunk.  What it promises: a dangling access faults once its thread has ended
 * N regions counting its own (or sooner, when the chunk fills); before, it reads the object's
 * stale bytes; no byte is ever handed out twice before the scan.
 */
#include "check.h"

#define BATCH 4
#define OPTIONS "revoke_batch=4"

static void test_faults_after_the_batch(void)
{
    test_setup(OPTIONS);
    CHECK(core_config.hand_on_unfaulted);
    struct thread_state *t = test_thread();
    char *objects[BATCH];
    struct core_counters before = test_stats();
    for (int r = 0; r < BATCH; r++) {
        region_begin(t, MARKER_API, 0);
        objects[r] = region_alloc(t->innermost, 3000);
        REQUIRE(objects[r] != NULL);
        memset(objects[r], r + 1, 3000);
        region_end(t, 0);
        if (r < BATCH - 1) {
            /* Dead but not yet revoked: stale bytes, and no system call was made. */
            CHECK_ACCESSIBLE(objects[0]);
            CHECK(chunk_address_is_dead(objects[0]));
            CHECK_EQ(test_stats().fault_calls, before.fault_calls);
        }
    }
    /* The fourth end revoked all four, in one call. */
    for (int r = 0; r < BATCH; r++) {
        CHECK_FAULTED(objects[r]);
        CHECK_FAULTED(objects[r] + 2999);
    }
    CHECK_EQ(test_stats().fault_calls, before.fault_calls + 1);
    struct dangling_info info;
    CHECK(dangling_lookup((uintptr_t)objects[1], &info) && info.found_range);
    /* The next region starts on the next page of the same chunk, after all of them. */
    region_begin(t, MARKER_API, 0);
    char *next = region_alloc(t->innermost, 100);
    REQUIRE(next != NULL);
    CHECK_EQ(chunk_index_of(next), chunk_index_of(objects[0]));
    CHECK(next > objects[BATCH - 1] + 3000);
    CHECK_EQ(((uintptr_t)next - OBJECT_HEADER_SIZE) % PAGE_SIZE_BYTES, 0);
    CHECK_ACCESSIBLE(next);
    region_end(t, 0);
}

static void test_no_byte_handed_out_twice(void)
{
    /* Many regions through several chunks: every object lies above every earlier one of its
     * chunk until the chunk is quarantined (its address space then waits for a scan). */
    test_setup(OPTIONS);
    struct thread_state *t = test_thread();
    static char *highest[4096];
    memset(highest, 0, sizeof highest);
    for (int r = 0; r < 3000; r++) {
        region_begin(t, MARKER_API, 0);
        for (int k = 0; k < 5; k++) {
            size_t size = 200 + (size_t)((r * 7 + k * 13) % 900);
            char *p = region_alloc(t->innermost, size);
            REQUIRE(p != NULL);
            uint32_t chunk = chunk_index_of(p);
            REQUIRE(chunk < 4096);
            CHECK_MSG(p > highest[chunk], "region %d reuses bytes at %p", r, (void *)p);
            CHECK_EQ(core.chunks[chunk].state, CHUNK_LIVE);
            highest[chunk] = p + size;
        }
        region_end(t, 0);
    }
    struct core_counters c = test_stats();
    CHECK(c.chunks_quarantined > 0); /* the run went through several chunks */
    CHECK(c.fault_calls >= 3000 / BATCH - 1 && c.fault_calls <= 3000 / BATCH + 2 * c.chunks_quarantined + 2);
    thread_state_exit(t);
}

static void test_other_spares_revoked_too(void)
{
    /* A nested region takes a chunk of its own; the batch revokes the dead prefixes of every
     * chunk the thread keeps. */
    test_setup(OPTIONS);
    struct thread_state *t = test_thread();
    region_begin(t, MARKER_API, 0);
    char *outer = region_alloc(t->innermost, 5000);
    region_begin(t, MARKER_API, 0);
    char *inner = region_alloc(t->innermost, 5000);
    CHECK_NE(chunk_index_of(outer), chunk_index_of(inner));
    region_end(t, 0);
    region_end(t, 0);
    CHECK_ACCESSIBLE(outer);
    CHECK_ACCESSIBLE(inner);
    for (int r = 0; r < BATCH - 2; r++) {
        region_begin(t, MARKER_API, 0);
        region_alloc(t->innermost, 64);
        region_end(t, 0);
    }
    CHECK_FAULTED(outer);
    CHECK_FAULTED(inner);
}

static void test_option_bounds(void)
{
    struct options options;
    char error[256];
    options_set_defaults(&options);
    CHECK(!options_parse(&options, "revoke_batch=1", error, sizeof error));
    CHECK_STR_CONTAINS(error, "revoke_batch");
    CHECK(!options_parse(&options, "revoke_batch=x", error, sizeof error));
    CHECK(options_parse(&options, "revoke_batch=0", error, sizeof error) && options.revoke_batch == 0);
    CHECK(options_parse(&options, "revoke_batch=64", error, sizeof error) && options.revoke_batch == 64);
}

static const struct test_case cases[] = {
    TEST_CASE(faults_after_the_batch),
    TEST_CASE(no_byte_handed_out_twice),
    TEST_CASE(other_spares_revoked_too),
    TEST_CASE(option_bounds),
};

int main(int argc, char **argv)
{
    return check_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
