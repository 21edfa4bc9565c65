/* io.c — allocation-free formatting and output (see io.h).
 * Never calls malloc, stdio or locale code. */
#include "common/io.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    char *buf;
    size_t cap, len;
} sink_t;

static void sink_put(sink_t *s, char c)
{
    if (s->len + 1 < s->cap)
        s->buf[s->len] = c;
    s->len++;
}

static void sink_num(sink_t *s, uint64_t v, unsigned base, bool neg, int width, char pad)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    if (neg)
        sink_put(s, '-');
    for (int w = n + neg; w < width; w++)
        sink_put(s, pad);
    while (n)
        sink_put(s, tmp[--n]);
}

size_t ml_vfmt(char *buf, size_t cap, const char *fmt, va_list ap)
{
    sink_t s = {buf, cap, 0};
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            sink_put(&s, *p);
            continue;
        }
        p++;
        char pad = ' ';
        int width = 0;
        if (*p == '0') {
            pad = '0';
            p++;
        }
        while (*p >= '0' && *p <= '9')
            width = width * 10 + (*p++ - '0');
        int lng = 0;
        bool size = false;
        while (*p == 'l') {
            lng++;
            p++;
        }
        if (*p == 'z') {
            size = true;
            p++;
        }
        switch (*p) {
        case 's': {
            const char *str = va_arg(ap, const char *);
            if (!str)
                str = "(null)";
            while (*str)
                sink_put(&s, *str++);
            break;
        }
        case 'c':
            sink_put(&s, (char)va_arg(ap, int));
            break;
        case 'd': {
            int64_t v = size ? (int64_t)va_arg(ap, ptrdiff_t)
                      : lng ? (int64_t)va_arg(ap, long long)
                            : va_arg(ap, int);
            if (lng == 1)
                v = (int64_t)(long)v;
            sink_num(&s, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, 10, v < 0, width, pad);
            break;
        }
        case 'u':
        case 'x': {
            uint64_t v = size ? va_arg(ap, size_t)
                       : lng ? (uint64_t)va_arg(ap, unsigned long long)
                             : va_arg(ap, unsigned);
            sink_num(&s, v, *p == 'x' ? 16 : 10, false, width, pad);
            break;
        }
        case 'p':
            sink_put(&s, '0');
            sink_put(&s, 'x');
            sink_num(&s, (uintptr_t)va_arg(ap, void *), 16, false, 0, ' ');
            break;
        case '%':
            sink_put(&s, '%');
            break;
        default: /* unknown conversion: print it verbatim rather than guess */
            sink_put(&s, '%');
            if (*p)
                sink_put(&s, *p);
            else
                p--;
        }
    }
    if (cap)
        buf[s.len < cap ? s.len : cap - 1] = '\0';
    return s.len < cap ? s.len : (cap ? cap - 1 : 0);
}

size_t ml_fmt(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = ml_vfmt(buf, cap, fmt, ap);
    va_end(ap);
    return n;
}

void ml_warn(const char *fmt, ...)
{
    char line[512];
    int saved = errno;
    size_t n = ml_fmt(line, sizeof line, "memledger: ");
    va_list ap;
    va_start(ap, fmt);
    n += ml_vfmt(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
    errno = saved;
}

void ml_out_init(ml_out_t *o, int fd)
{
    o->fd = fd;
    o->failed = false;
    o->err = 0;
    o->sink = NULL;
    o->sink_ctx = NULL;
    o->bytes = 0;
    o->len = 0;
}

void ml_out_init_sink(ml_out_t *o, ml_out_sink_fn sink, void *ctx)
{
    ml_out_init(o, -1);
    o->sink = sink;
    o->sink_ctx = ctx;
}

static void out_drain(ml_out_t *o)
{
    o->bytes += o->len;
    if (o->sink) {
        int err = o->failed || !o->len ? 0 : o->sink(o->sink_ctx, o->buf, o->len);
        if (err) {
            o->failed = true;
            o->err = err;
        }
        o->len = 0;
        return;
    }
    size_t off = 0;
    while (off < o->len && !o->failed) {
        ssize_t w = write(o->fd, o->buf + off, o->len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            o->failed = true;
            o->err = errno;
        } else {
            off += (size_t)w;
        }
    }
    o->len = 0;
}

void ml_out_bytes(ml_out_t *o, const char *s, size_t n)
{
    while (n) {
        if (o->len == sizeof o->buf)
            out_drain(o);
        size_t k = sizeof o->buf - o->len;
        if (k > n)
            k = n;
        memcpy(o->buf + o->len, s, k);
        o->len += k;
        s += k;
        n -= k;
    }
}

void ml_out_str(ml_out_t *o, const char *s) { ml_out_bytes(o, s, strlen(s)); }

void ml_out_char(ml_out_t *o, char c) { ml_out_bytes(o, &c, 1); }

void ml_out_u64(ml_out_t *o, uint64_t v)
{
    char tmp[24];
    ml_out_bytes(o, tmp, ml_fmt(tmp, sizeof tmp, "%llu", (unsigned long long)v));
}

void ml_out_i64(ml_out_t *o, int64_t v)
{
    char tmp[24];
    ml_out_bytes(o, tmp, ml_fmt(tmp, sizeof tmp, "%lld", (long long)v));
}

void ml_out_hex(ml_out_t *o, uint64_t v)
{
    char tmp[24];
    ml_out_bytes(o, tmp, ml_fmt(tmp, sizeof tmp, "%llx", (unsigned long long)v));
}

void ml_out_field(ml_out_t *o, const char *s)
{
    if (!s) {
        ml_out_char(o, '-');
        return;
    }
    if (s[0] == '-' && s[1] == '\0') {
        ml_out_str(o, "\\-");
        return;
    }
    const char *run = s;
    for (; *s; s++) {
        const char *esc = NULL;
        switch (*s) {
        case '\t': esc = "\\t"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\\': esc = "\\\\"; break;
        default: continue;
        }
        ml_out_bytes(o, run, (size_t)(s - run));
        ml_out_str(o, esc);
        run = s + 1;
    }
    ml_out_bytes(o, run, (size_t)(s - run));
}

void ml_out_printf(ml_out_t *o, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    size_t n = ml_vfmt(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    ml_out_bytes(o, tmp, n);
}

bool ml_out_flush(ml_out_t *o)
{
    out_drain(o);
    return !o->failed;
}
