/*
 * reserve_loop.c — regions that together, or each, allocate more than a small reserve=.
 *
 *   reserve_loop CALLS MIB [NODE_BYTES]
 *
 * An ordinary program: it knows nothing of arenashim.  build_list() (the marker:
 * ARENASHIM_REGIONS=build_list) allocates MIB MiB as a linked list of nodes of NODE_BYTES (default 1024, at least 64), each filled
 * with a pattern of its call and index, checks every node and returns a checksum; it frees
 * nothing (the region frees it all at once).  main calls it CALLS times and prints each
 * checksum and their sum: the same with or without arenashim, whichever way the memory was
 * served (region chunks, or the heap once the reservation ran out).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node {
    struct node *next;
    uint32_t call, index;
    unsigned char payload[];
};

static size_t node_bytes = 1024;

__attribute__((noinline)) uint64_t build_list(unsigned call, unsigned mib)
{
    size_t payload = node_bytes - sizeof(struct node);
    unsigned count = (unsigned)(((size_t)mib << 20) / node_bytes);
    struct node *head = NULL;
    for (unsigned i = 0; i < count; i++) {
        struct node *n = malloc(node_bytes);
        if (n == NULL) {
            printf("malloc failed at call %u node %u\n", call, i);
            exit(1);
        }
        n->next = head;
        n->call = call;
        n->index = i;
        memset(n->payload, (int)((call * 131 + i) & 0xff), payload);
        head = n;
    }
    uint64_t sum = 0;
    unsigned seen = 0;
    for (struct node *n = head; n; n = n->next, seen++) {
        if (n->call != call || n->payload[payload - 1] != (unsigned char)((call * 131 + n->index) & 0xff)) {
            printf("node %u of call %u is corrupt\n", n->index, call);
            exit(1);
        }
        sum = sum * 1000003 + n->index + n->payload[7];
    }
    if (seen != count) {
        printf("call %u: %u nodes, expected %u\n", call, seen, count);
        exit(1);
    }
    return sum;
}

int main(int argc, char **argv)
{
    unsigned calls = argc > 1 ? (unsigned)atoi(argv[1]) : 3;
    unsigned mib = argc > 2 ? (unsigned)atoi(argv[2]) : 80;
    if (argc > 3 && atoi(argv[3]) >= 64)
        node_bytes = (size_t)atoi(argv[3]);
    uint64_t total = 0;
    for (unsigned c = 0; c < calls; c++) {
        uint64_t sum = build_list(c, mib);
        printf("call %u: %u MiB in %zu-byte nodes, checksum %016llx\n", c, mib, node_bytes, (unsigned long long)sum);
        total ^= sum;
    }
    printf("total %016llx\n", (unsigned long long)total);
    return 0;
}
