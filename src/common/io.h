/* io.h — text output that never touches stdio or the allocator.
 * Owns: a small printf-style formatter, the one warning function, and a
 * buffered writer over a file descriptor (used by the snapshot writer).
 * Must never call malloc, stdio or locale code: hooks and the exit path use it. */
#ifndef ML_IO_H
#define ML_IO_H

#include "common/common.h"
#include <stdarg.h>
#include <string.h>

/* Formats into buf (always NUL-terminated when cap > 0). Supports %s %c %%,
 * %d %u %x with a zero-pad flag, a width and the l, ll and z length
 * modifiers, and %p. Returns the length
 * that was written, excluding the NUL. */
size_t ml_vfmt(char *buf, size_t cap, const char *fmt, va_list ap);
size_t ml_fmt(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prints "memledger: <message>\n" on stderr in one write(2). */
void ml_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A buffered writer to an fd, or to a sink of the caller's (the snapshot
 * writer compresses through one). Errors are sticky: check `failed` at the
 * end. */
typedef struct ml_out ml_out_t;
/* Takes n bytes; returns 0, or an errno value (the writer then fails). */
typedef int (*ml_out_sink_fn)(void *ctx, const char *p, size_t n);
struct ml_out {
    int fd;
    bool failed;
    int err;          /* errno of the first failure */
    ml_out_sink_fn sink;
    void *sink_ctx;
    uint64_t bytes;   /* handed to the fd or the sink so far */
    size_t len;
    char buf[1 << 16];
};

void ml_out_init(ml_out_t *o, int fd);
/* Writes through sink(ctx, ...) instead of an fd. */
void ml_out_init_sink(ml_out_t *o, ml_out_sink_fn sink, void *ctx);
void ml_out_bytes(ml_out_t *o, const char *s, size_t n);
void ml_out_str(ml_out_t *o, const char *s);
void ml_out_char(ml_out_t *o, char c);
void ml_out_u64(ml_out_t *o, uint64_t v);
void ml_out_i64(ml_out_t *o, int64_t v);
void ml_out_hex(ml_out_t *o, uint64_t v);
/* Writes s with tab, newline, carriage return and backslash escaped as
 * \t \n \r \\, so a field never breaks the line format; NULL writes "-",
 * and a string that is exactly "-" is written as "\-". */
void ml_out_field(ml_out_t *o, const char *s);
void ml_out_printf(ml_out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Returns false when anything failed so far. */
bool ml_out_flush(ml_out_t *o);

/* Splits a line of the format's text records at its tabs, in place: up
 * to max fields into f (the last keeps any further tabs). Returns how
 * many. */
static inline int ml_split_tabs(char *line, char **f, int max)
{
    int n = 0;
    for (char *s = line; n < max;) {
        f[n++] = s;
        char *tab = strchr(s, '\t');
        if (!tab)
            break;
        *tab = '\0';
        s = tab + 1;
    }
    return n;
}

/* Code point c as UTF-8 into out (room for 4 bytes); returns the bytes
 * written. c must be at most 0x10ffff. */
static inline size_t ml_utf8_put(char *out, uint32_t c)
{
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xc0 | c >> 6);
        out[1] = (char)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xe0 | c >> 12);
        out[1] = (char)(0x80 | ((c >> 6) & 0x3f));
        out[2] = (char)(0x80 | (c & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | c >> 18);
    out[1] = (char)(0x80 | ((c >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3f));
    out[3] = (char)(0x80 | (c & 0x3f));
    return 4;
}

#endif
