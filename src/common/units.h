/* units.h — parsing of sizes, durations and small integers, shared by the
 * library's configuration and the CLI's options.
 * Must never allocate or print: callers decide what an error means. */
#ifndef ML_UNITS_H
#define ML_UNITS_H

#include "common/common.h"

/* "4096", "512KiB", "1.5MiB", "2GiB", "10B" (also K/M/G and KB/MB/GB, all
 * binary). Returns true on success; false for empty, negative, unknown unit,
 * trailing garbage or overflow. */
bool ml_parse_size(const char *s, uint64_t *out);

/* A non-negative duration in seconds with optional unit: "30", "0.5", "250ms",
 * "10s", "2m", "1h". Returns milliseconds in *out. */
bool ml_parse_duration_ms(const char *s, uint64_t *out);

/* A decimal integer in [lo, hi]. */
bool ml_parse_u64_range(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);

/* "1"/"0", "yes"/"no", "true"/"false", "on"/"off". */
bool ml_parse_bool(const char *s, bool *out);

/* Formats bytes as "1.5 MiB" (or "512 B"); returns buf. */
char *ml_human_size(char *buf, size_t cap, int64_t bytes);

#endif
