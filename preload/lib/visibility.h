/*
 * visibility.h — how the library's symbols and thread-local variables are declared.
 *
 * Layer: preload, lib.  The library is built with hidden visibility: only what interposes a
 * C library or C++ runtime function, or is the public API, is exported.  Thread-local
 * variables use the initial-exec model: the library is preloaded, so its TLS is in the
 * static block, and each access is one %fs-relative load (glibc's manual asks the same of
 * malloc replacements).
 */
#ifndef ARENASHIM_PRELOAD_LIB_VISIBILITY_H
#define ARENASHIM_PRELOAD_LIB_VISIBILITY_H

#define EXPORTED __attribute__((visibility("default")))
#define TLS_INITIAL_EXEC __attribute__((tls_model("initial-exec")))

#endif
