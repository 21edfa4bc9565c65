/* bench_churn.c — the churn benchmark: T threads, each at call depth D,
 * allocate 8 blocks of mixed sizes and free them, N times. Prints the
 * core-nanoseconds per allocation+free: wall time of the parallel part ×
 * the cores the threads could use, divided by all allocation+free pairs.
 * Usage: bench_churn THREADS DEPTH PAIRS_PER_THREAD */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline, noclone))

static long pairs;
static pthread_barrier_t start;
static volatile long sink;

NOINLINE static void work(void)
{
    void *p[8];
    for (long i = 0; i < pairs; i += 8) {
        for (int k = 0; k < 8; k++)
            p[k] = malloc(16 + (size_t)k * 40);
        for (int k = 0; k < 8; k++)
            free(p[k]);
    }
}

NOINLINE static void descend(int d)
{
    if (d > 0)
        descend(d - 1);
    else
        work();
    sink++; /* no tail call: every level keeps its frame */
}

static int depth;

static void *thread(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&start);
    descend(depth);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    int threads = atoi(argv[1]);
    depth = atoi(argv[2]) - 4; /* main/thread start, thread, descend(0), work: the rest is descend */
    pairs = atol(argv[3]);
    if (threads < 1 || threads > 64 || depth < 0 || pairs < 8)
        return 2;
    pthread_t t[64];
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, thread, NULL);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pthread_barrier_wait(&start);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    double used = threads < cores ? threads : cores;
    double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) * used;
    printf("%.2f\n", ns / ((double)pairs * threads));
    return 0;
}
