/* bench_faults.c — what touching fresh memory costs on this machine, the
 * figure behind memledger's populating of the mappings it fills at once
 * (docs/performance.md): microseconds per 4 KiB page, first touched one
 * at a time (a fault each), then mapped with MAP_POPULATE (one call).
 *
 *     build/test/bench_faults [pages]      default 50,000 pages (195 MiB) */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static double per_page(size_t pages, int flags)
{
    size_t size = pages * 4096;
    double t0 = now_us();
    volatile char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    for (size_t i = 0; i < size; i += 4096)
        p[i] = 1;
    double us = (now_us() - t0) / (double)pages;
    munmap((void *)p, size);
    return us;
}

int main(int argc, char **argv)
{
    size_t pages = argc > 1 ? strtoul(argv[1], NULL, 10) : 50000;
    printf("fault a page: %.2f us\n", per_page(pages, 0));
    printf("populated:    %.2f us a page\n", per_page(pages, MAP_POPULATE));
    return 0;
}
