/* bench_run.c — runs one benchmark command and reports its peak RSS, wall
 * time and exit status on stderr ("@@rusage KIB SECONDS RC"), for
 * scripts/bench. Linux keeps the peak RSS of a process across exec, so the
 * process that forks the command must be small and must not itself run
 * under the tool being measured: the tool's preload travels here as
 * BENCH_PRELOAD and becomes LD_PRELOAD only in the command. Peak RSS
 * covers the command's descendants that it waited for (heaptrack's script
 * runs the program as its child). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_run COMMAND [ARG...]\n");
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("bench_run: fork");
        return 2;
    }
    if (pid == 0) {
        const char *preload = getenv("BENCH_PRELOAD");
        if (preload) {
            setenv("LD_PRELOAD", preload, 1);
            unsetenv("BENCH_PRELOAD");
        }
        execvp(argv[1], argv + 1);
        perror("bench_run: exec");
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0) {
        perror("bench_run: waitpid");
        return 2;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    fprintf(stderr, "\n@@rusage %ld %.6f %d\n", ru.ru_maxrss,
            (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, rc);
    return 0;
}
