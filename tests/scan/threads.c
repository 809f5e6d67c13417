/*
 * threads.c — stopping the world while threads come, go and run.
 *
 * mode "churn": one thread keeps creating and joining short-lived threads (each allocates in
 * a region) while the main thread scans in a loop for SECONDS.  Every collect must end in a
 * scan or a give-up (counted), never crash; most must run.  A collect that hangs is the
 * runner's timeout; how long collects take is bench/'s business.
 *
 * mode "main_exit": the main thread calls pthread_exit() (it becomes a zombie that can take
 * no signal); a worker then scans: the scans must run (the scans counter grows, scan_giveups
 * does not) and release the worker's dead chunks.
 */
#include "scanutil.h"

#include <pthread.h>

static volatile int stop;
static double seconds = 1.5;

static void *short_lived(void *arg)
{
    (void)arg;
    arenashim_region_begin();
    char *volatile p = malloc(2000);
    p[0] = 1;
    p = NULL;
    arenashim_region_end();
    return NULL;
}

static void *creator(void *arg)
{
    unsigned long *created = arg;
    while (!stop) {
        pthread_t t[4];
        int n = 0;
        for (; n < 4; n++)
            if (pthread_create(&t[n], NULL, short_lived, NULL) != 0)
                break;
        for (int i = 0; i < n; i++)
            pthread_join(t[i], NULL);
        *created += (unsigned long)n;
    }
    return NULL;
}

static int run_churn(void)
{
    pthread_t thread;
    unsigned long created = 0;
    pthread_create(&thread, NULL, creator, &created);
    double end = su_now() + seconds;
    unsigned collects = 0;
    while (su_now() < end) {
        su_make_dead(SPAN_OBJECT_BYTES, 0, NULL, NULL);
        arenashim_collect();
        collects++;
    }
    stop = 1;
    pthread_join(thread, NULL);
    su_stats_refresh();
    unsigned long long scans = su_json_number("scans"), giveups = su_json_number("scan_giveups");
    printf("%u collects, %llu scans, %llu given up, %lu threads created\n", collects, scans, giveups,
           created);
    CHECK(created > 0, "no thread was created");
    CHECK(collects > 0, "no collect ran");
    CHECK(scans + giveups >= collects, "%u collects but %llu scans and %llu give-ups", collects, scans,
          giveups);
    CHECK(scans * 2 >= collects, "only %llu of %u scans ran (%llu given up)", scans, collects, giveups);
    return 0;
}

static void *after_main_exit(void *arg)
{
    (void)arg;
    struct timespec pause = { 0, 50 * 1000 * 1000 };
    nanosleep(&pause, NULL); /* let main finish exiting */
    su_make_dead(SPAN_OBJECT_BYTES, 0, NULL, NULL);
    su_make_dead(SPAN_OBJECT_BYTES, 0, NULL, NULL);
    su_stats_refresh();
    unsigned long long released = su_json_number("chunks_released");
    unsigned long long scans_before = su_json_number("scans");
    su_collect_clean();
    su_collect_clean();
    su_stats_refresh();
    unsigned long long scans = su_json_number("scans"), giveups = su_json_number("scan_giveups");
    printf("after main exited: %llu scans (%llu before), %llu given up\n", scans, scans_before, giveups);
    /* The second collect finds the quarantine empty and scans nothing. */
    CHECK(scans > scans_before && giveups == 0, "scans %llu -> %llu, scan_giveups %llu: no scan ran "
          "after the main thread exited", scans_before, scans, giveups);
    CHECK(su_json_number("chunks_released") >= released + 2, "chunks_released %llu -> %llu", released,
          su_json_number("chunks_released"));
    su_print_stats("end");
    printf("DONE failures=%d\n", su_failures);
    fflush(stdout);
    exit(su_failures ? 1 : 0);
}

int main(int argc, char **argv)
{
    su_require_shim();
    if (argc >= 3)
        seconds = atof(argv[2]);
    if (argc >= 2 && strcmp(argv[1], "churn") == 0)
        run_churn();
    else if (argc >= 2 && strcmp(argv[1], "main_exit") == 0) {
        pthread_t thread;
        pthread_create(&thread, NULL, after_main_exit, NULL);
        pthread_exit(NULL);
    } else {
        printf("usage: threads churn|main_exit\n");
        return 3;
    }
    su_print_stats("end");
    printf("DONE failures=%d\n", su_failures);
    return su_failures ? 1 : 0;
}
