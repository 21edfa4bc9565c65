/* setuid_probe.c — run set-user-ID (the test makes a setuid copy and runs
 * it as another user), it reports what memledger did in a secure process:
 * whether LD_PRELOAD brought the library in (the loader refuses paths in
 * secure mode), then loads it with dlopen — which a setuid program may do —
 * and asks it whether it tracks, whether it took the snapshot signal, and
 * whether it started its thread. Usage: setuid_probe LIBMEMLEDGER */
#include <dirent.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

static int maps_have(const char *what)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4096];
    int found = 0;
    while (f && fgets(line, sizeof line, f))
        found |= strstr(line, what) != NULL;
    if (f)
        fclose(f);
    return found;
}

static int memledger_thread(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int found = 0;
    while (d && (e = readdir(d))) {
        char path[300], comm[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f && fgets(comm, sizeof comm, f))
            found |= strncmp(comm, "memledger", 9) == 0;
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
    return found;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    int preloaded = maps_have("libmemledger");
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 3;
    }
    int (*active)(void) = (int (*)(void))dlsym(h, "memledger_active");
    int (*snap)(char *, size_t) = (int (*)(char *, size_t))dlsym(h, "memledger_snapshot");
    free(malloc(1000));
    char path[4096] = "";
    int snap_err = snap ? snap(path, sizeof path) : -1;
    struct sigaction sa;
    sigaction(SIGUSR2, NULL, &sa);
    printf("{\"secure\": %lu, \"euid\": %d, \"uid\": %d, \"preloaded\": %d, \"active\": %d, \"snapshot_err\": %d, "
           "\"usr2_default\": %d, \"thread\": %d}\n",
           getauxval(AT_SECURE), (int)geteuid(), (int)getuid(), preloaded, active ? active() : -1, snap_err,
           !(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_DFL, memledger_thread());
    return 0;
}
