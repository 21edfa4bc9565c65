/* fuzz_diff.c — libFuzzer target: `memledger diff` and `memledger top` on
 * inputs from memory. The input is split in two at the second magic line
 * (or in the middle when there is none): base and head snapshots, passed
 * to the real commands as /proc/self/fd paths of memfds, in text and JSON.
 * Run with -close_fd_mask=3: the commands print to stdout and stderr. */
#include "cli.h"

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
        cmd_diff(3, diff_text);
        cmd_diff(6, diff_json);
        cmd_top(4, top_text);
        cmd_top(4, top_json);
        fflush(stdout);
    }
    if (fa >= 0)
        close(fa);
    if (fb >= 0)
        close(fb);
    return 0;
}
