/*
 * request.h — the request handler shared by wl_request (one thread) and wl_server (a pool of
 * threads).  See request.c.
 */
#ifndef WORKLOADS_REQUEST_H
#define WORKLOADS_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* Writes request number `index` (deterministic) into t, reusing its buffer. */
void make_request(struct text *t, unsigned long index);

/* Parses the request into a tree of small heap objects, renders a response, returns its
 * checksum and frees everything -- except, when leaky_handler is set, on the "retry" path
 * (about 1 request in 6), where it forgets to free the parsed JSON body.  The natural
 * function to mark: ARENASHIM_REGIONS=handle_request. */
uint64_t handle_request(const char *raw, size_t len);

extern int leaky_handler;

#endif
