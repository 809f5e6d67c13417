/*
 * policy.c — when scans run: scan=off never scans; quarantine_max triggers automatic scans.
 *
 * mode "off" (run with scan=off): twelve dead chunks, then arenashim_collect() twice: scans
 * stays 0, nothing is released, and new regions never get a quarantined chunk back.
 *
 * mode "auto" (run with quarantine_max=4M): dead chunks are made one region at a time
 * without ever calling arenashim_collect(): no scan while quarantine holds at most 4 MiB,
 * then scans run by themselves (on the collector thread), release the chunks, and new
 * regions reuse them.
 */
#include "scanutil.h"

static int run_off(void)
{
    for (int i = 0; i < 12; i++)
        su_make_dead(SPAN_OBJECT_BYTES, 0, NULL, NULL);
    su_collect_clean();
    su_collect_clean();
    su_stats_refresh();
    CHECK(su_json_number("scans") == 0, "scans = %llu with scan=off", su_json_number("scans"));
    CHECK(su_json_number("chunks_released") == 0, "chunks_released = %llu with scan=off",
          su_json_number("chunks_released"));
    CHECK(su_json_number("quarantine_bytes") >= 12 * CHUNK_BYTES, "quarantine_bytes = %llu",
          su_json_number("quarantine_bytes"));
    unsigned long long mapped = su_json_number("chunks_mapped");
    su_probe(0, 0, (unsigned)mapped + 8);
    su_stats_refresh();
    CHECK(su_json_number("chunks_reused") == 0, "chunks_reused = %llu with scan=off",
          su_json_number("chunks_reused"));
    return 0;
}

static int run_auto(void)
{
    /* Up to 4 MiB in quarantine: no scan yet. */
    for (int i = 0; i < 4; i++)
        su_make_dead(SPAN_OBJECT_BYTES, 0, NULL, NULL);
    su_stats_refresh();
    CHECK(su_json_number("quarantine_bytes") == 4 * CHUNK_BYTES, "quarantine_bytes = %llu after 4 "
          "one-chunk regions", su_json_number("quarantine_bytes"));
    CHECK(su_json_number("scans") == 0, "scans = %llu with only 4 MiB quarantined (quarantine_max=4M)",
          su_json_number("scans"));
    /* Past the threshold: region ends scan by themselves. */
    for (int i = 0; i < 8; i++) {
        su_clear_stack();
        su_scrub_registers();
        su_make_dead(SPAN_OBJECT_BYTES, 0, NULL, NULL);
    }
    /* Scans run on the collector thread: give the last one time to finish (it is asked for
     * at once; the region ends do not wait for it). */
    for (double deadline = su_now() + 10; su_now() < deadline;) {
        su_stats_refresh();
        if (su_json_number("quarantine_bytes") <= 5 * CHUNK_BYTES)
            break;
        usleep(10000);
    }
    su_stats_refresh();
    unsigned long long scans = su_json_number("scans");
    CHECK(scans > 0, "no automatic scan after 12 MiB were quarantined (quarantine_max=4M)");
    CHECK(su_json_number("chunks_released") > 0, "automatic scans released nothing");
    CHECK(su_json_number("quarantine_bytes") <= 5 * CHUNK_BYTES, "quarantine_bytes = %llu: automatic "
          "scans did not keep quarantine near quarantine_max", su_json_number("quarantine_bytes"));
    su_probe(0, 0, 16);
    su_stats_refresh();
    CHECK(su_json_number("chunks_reused") > 0, "no chunk was reused after automatic scans");
    return 0;
}

int main(int argc, char **argv)
{
    su_require_shim();
    if (argc >= 2 && strcmp(argv[1], "off") == 0)
        run_off();
    else if (argc >= 2 && strcmp(argv[1], "auto") == 0)
        run_auto();
    else {
        printf("usage: policy off|auto\n");
        return 3;
    }
    su_print_stats("end");
    printf("DONE failures=%d\n", su_failures);
    return su_failures ? 1 : 0;
}
