/* memledger.h — the public API of libmemledger.so.
 *
 * Most users never include this: preloading the library and sending it
 * SIGUSR2 is the whole interface. A program that wants to take snapshots at
 * points of its own choosing (a test, a CI job, a request handler behind an
 * admin endpoint) can call these, after checking the library is present:
 *
 *     int (*snap)(char *, size_t) = dlsym(RTLD_DEFAULT, "memledger_snapshot");
 *     if (snap) snap(path, sizeof path);
 */
#ifndef MEMLEDGER_H
#define MEMLEDGER_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MEMLEDGER_VERSION_MAJOR 0
#define MEMLEDGER_VERSION_MINOR 1
#define MEMLEDGER_VERSION_PATCH 0
#define MEMLEDGER_VERSION "0.1.0"

/* Writes a snapshot now, from the calling thread, into MEMLEDGER_DIR.
 * Returns 0 and the file's path in `path` (when path is not NULL and cap is
 * large enough), or an errno value; never a partial file. Not for use from a
 * signal handler. */
int memledger_snapshot(char *path, size_t cap);

/* 1 when allocations are being tracked, 0 when the library is loaded but
 * off (MEMLEDGER_ENABLE=0, a setuid program, or start-up failed). */
int memledger_active(void);

/* The library's version string. */
const char *memledger_version(void);

#ifdef __cplusplus
}
#endif

#endif
