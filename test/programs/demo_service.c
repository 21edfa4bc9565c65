/* demo_service.c — a small "request server" with two planted leaks, for
 * scripts/demo and its test. Each request makes temporaries (freed), puts a
 * response in a bounded cache (fills during warm-up, then only replaces),
 * and leaks: every request appends to an audit history that is never
 * trimmed, and every 10th keeps a copy of its parsed config. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
#define CACHE_SLOTS 64

typedef struct history {
    struct history *next;
    char line[504];
} history_t;

static history_t *history;
static char *cache[CACHE_SLOTS];
static char **configs;
static size_t nconfigs, configs_cap;
static volatile sig_atomic_t stop;

NOINLINE static void audit_log(long id)
{
    history_t *h = malloc(sizeof *h); /* the leak: nobody trims the history */
    snprintf(h->line, sizeof h->line, "request %ld served", id);
    h->next = history;
    history = h;
}

NOINLINE static void remember_config(long id)
{
    if (nconfigs == configs_cap) {
        configs_cap = configs_cap ? configs_cap * 2 : 16;
        configs = realloc(configs, configs_cap * sizeof *configs);
    }
    char buf[200];
    snprintf(buf, sizeof buf, "config-of-request-%ld:timeout=30,retries=3", id);
    configs[nconfigs++] = strdup(buf); /* the second leak: kept "for debugging" */
}

NOINLINE static void cache_response(long id, const char *body)
{
    size_t slot = (size_t)id % CACHE_SLOTS;
    free(cache[slot]); /* bounded: a full cache replaces, it does not grow */
    cache[slot] = malloc(2048);
    snprintf(cache[slot], 2048, "%s", body);
}

NOINLINE static void handle_request(long id)
{
    char *request = malloc(4096); /* temporaries, freed before returning */
    char *response = calloc(1, 1024);
    snprintf(request, 4096, "GET /item/%ld", id);
    snprintf(response, 1024, "item %ld: ok", id);
    cache_response(id, response);
    audit_log(id);
    if (id % 10 == 0)
        remember_config(id);
    free(response);
    free(request);
}

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    long limit = argc > 1 ? atol(argv[1]) : 0; /* 0: serve until SIGTERM */
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    struct timespec pause = {0, 500000};
    long id = 0;
    for (; !stop && (!limit || id < limit); id++) {
        handle_request(id);
        if (id == 200) {
            printf("ready after %ld requests (pid %d)\n", id, (int)getpid());
            fflush(stdout);
        }
        nanosleep(&pause, NULL);
    }
    printf("served %ld requests\n", id);
    return 0;
}
