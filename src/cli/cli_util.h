/* cli_util.h — what every memledger command shares: exit codes, error
 * messages, loading snapshots, and rendering frames as text or JSON.
 * CLI-side only. */
#ifndef ML_CLI_UTIL_H
#define ML_CLI_UTIL_H

#include "cli/growth.h"
#include "cli/snapshot_read.h"
#include "cli/stackset.h"

#include <stdio.h>

enum { ML_EXIT_OK = 0, ML_EXIT_FAIL = 1, ML_EXIT_USAGE = 2 };

/* "memledger: <message>" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints the message and a pointer to --help; returns ML_EXIT_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Loads a snapshot or prints why not (file and line). */
ml_snapshot_t *cli_load(const char *path);

/* "function at file:line", "module.function (Cython: symbol) at file:line" for
 * a Cython-generated function, or "file:line in function" for Python; writes into
 * buf and returns it. An inlined function's view adds " (inlined)" after
 * its place. `module` adds " [libfoo.so]" for native frames. */
const char *cli_frame_text(const ml_sframe_t *f, bool module, char *buf, size_t cap);

/* A stack's frames as shown, innermost first: each frame's inlined
 * functions (innermost first, see ml_sframe_inlined), then the frame. */
uint32_t cli_shown_count(const ml_stackset_t *set, const ml_sstack_t *st);
/* Where frame i of the stack (i < st->nframes) starts among those shown:
 * at its innermost inlined function, or itself when it has none. */
uint32_t cli_shown_index(const ml_stackset_t *set, const ml_sstack_t *st, uint32_t i);
/* Shown frame j (j < cli_shown_count) of the stack; *view may be used. */
const ml_sframe_t *cli_shown_frame(const ml_stackset_t *set, const ml_sstack_t *st, uint32_t j,
                                   ml_sframe_t *view);

/* A JSON string literal (with quotes), or null for NULL. */
void cli_json_str(FILE *out, const char *s);
/* One frame as a JSON object per the command contract ("inlined": true
 * for an inlined function's view). */
void cli_json_frame(FILE *out, const ml_sframe_t *f);
/* A stack's frames as shown (inlined functions included), comma-separated
 * JSON objects. */
void cli_json_frames(FILE *out, const ml_stackset_t *set, const ml_sstack_t *st);

/* Signed exact bytes with a human-readable size beside: "+1048576 B (+1.0 MiB)". */
const char *cli_bytes(int64_t bytes, bool sign, char *buf, size_t cap);

/* A growing list of option values (--include, --exclude). */
typedef struct {
    const char **v;
    size_t n, cap;
} cli_list_t;
/* Appends s (not copied); false when out of memory. */
bool cli_list_push(cli_list_t *l, const char *s);
/* --include and --exclude into the growth options (the lists stay the caller's). */
void cli_set_patterns(ml_growth_opts_t *g, const cli_list_t *inc, const cli_list_t *exc);

/* A human size, signed when asked: "+1.7 MiB", "-512 B", "0 B". */
const char *cli_human(int64_t bytes, bool sign, char *buf, size_t cap);

/* Whether output to `out` gets ANSI colours. `mode` is --color's value:
 * "always", "never", or "auto"/NULL: only on a terminal, and never when the
 * NO_COLOR environment variable is set to anything non-empty. */
bool cli_color(FILE *out, const char *mode);

/* A frame's name alone: its function ("module.function (Cython: symbol)"
 * for a Cython-generated one), or "module+0xoffset" (native) or "?" when
 * unknown. */
const char *cli_frame_name(const ml_sframe_t *f, char *buf, size_t cap);

/* Where libmemledger.so is, next to or installed beside this executable;
 * MEMLEDGER_LIB overrides. Returns false when not found. */
bool cli_find_library(char *out, size_t cap);

#endif
