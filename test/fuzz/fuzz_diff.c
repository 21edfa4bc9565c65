/* fuzz_diff.c — libFuzzer target: `memledger diff`, `top` and `export` on
 * inputs from memory. The input is split in two at the second magic line
 * (or in the middle when there is none): base and head snapshots, passed
 * to the real commands as /proc/self/fd paths of memfds: diff in text,
 * JSON and markdown (grouped, filtered, with thresholds), top, and export
 * in each format to standard output.
 * Run with -close_fd_mask=3: the commands print to stdout and stderr. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static int memfd_of(const unsigned char *p, size_t n, char *path, size_t cap)
{
    int fd = memfd_create("fuzz", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    if (n && write(fd, p, n) != (ssize_t)n) {
        close(fd);
        return -1;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static const char magic[] = "memledger-snapshot\t";
    size_t split = size / 2;
    const unsigned char *second = size > 1 ? memmem(data + 1, size - 1, magic, sizeof magic - 1) : NULL;
    if (second)
        split = (size_t)(second - data);
    char a[64], b[64];
    int fa = memfd_of(data, split, a, sizeof a);
    int fb = memfd_of(data + split, size - split, b, sizeof b);
    if (fa >= 0 && fb >= 0) {
        char d[] = "diff", t[] = "top", fmt[] = "--format", json[] = "json", n[] = "-n", zero[] = "0";
        char *diff_text[] = {d, a, b, NULL};
        char *diff_json[] = {d, b, a, a, fmt, json, NULL};
        char *top_text[] = {t, b, n, zero, NULL};
        char *top_json[] = {t, a, fmt, json, NULL};
        char md[] = "markdown", gb[] = "--group-by", line[] = "line", fn[] = "function", fa[] = "--fail-above",
             one[] = "1", ft[] = "--fail-total-above", pct[] = "10%", inc[] = "--include", pat[] = "*a*",
             ex[] = "export", base[] = "--base", o[] = "-o", dash[] = "-", pprof[] = "pprof",
             collapsed[] = "collapsed", html[] = "html", col[] = "--color", always[] = "always";
        char *diff_md[] = {d, a, b, b, fmt, md, gb, line, fa, one, ft, pct, NULL};
        char *diff_fn[] = {d, a, b, gb, fn, inc, pat, col, always, NULL};
        char *export_pprof[] = {ex, b, base, a, fmt, pprof, o, dash, NULL};
        char *export_collapsed[] = {ex, b, fmt, collapsed, o, dash, NULL};
        char *export_html[] = {ex, b, base, a, fmt, html, o, dash, NULL};
        cmd_diff(3, diff_text);
        cmd_diff(6, diff_json);
        cmd_diff(12, diff_md);
        cmd_diff(9, diff_fn);
        cmd_top(4, top_text);
        cmd_top(4, top_json);
        cmd_export(8, export_pprof);
        cmd_export(6, export_collapsed);
        cmd_export(8, export_html);
        fflush(stdout);
    }
    if (fa >= 0)
        close(fa);
    if (fb >= 0)
        close(fb);
    return 0;
}
