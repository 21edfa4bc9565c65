/* http_service.c — a tiny HTTP/1.0 service for the CI script's test
 * (scripts/ci-memory-check): it "loads a model" for WARMUP_MS (fills a
 * bounded cache), then says so three ways: GET /health turns from 503 to
 * 200, "ready" is printed, and the file named by argv[2] (if any) is
 * created. GET /work?n=N serves N requests: each churns temporaries,
 * replaces a cache entry, and leaks LEAK_BYTES in remember_request (the
 * planted leak). One thread, one connection at a time; SIGTERM ends it.
 *   http_service PORT [READY_FILE] */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
#define LEAK_BYTES 1000
#define CACHE_SLOTS 32
#define CACHE_BYTES 4096
#define WARMUP_MS 300

static char *cache[CACHE_SLOTS];
static char **history;
static size_t nhistory, history_cap;
static volatile sig_atomic_t stop;
static int warm;

NOINLINE static void remember_request(long id)
{
    if (nhistory == history_cap) {
        history_cap = history_cap ? history_cap * 2 : 1024;
        history = realloc(history, history_cap * sizeof *history);
    }
    char *h = malloc(LEAK_BYTES); /* the leak: the history is never trimmed */
    snprintf(h, LEAK_BYTES, "request %ld", id);
    history[nhistory++] = h;
}

NOINLINE static void cache_put(long id)
{
    size_t slot = (size_t)id % CACHE_SLOTS;
    free(cache[slot]);
    cache[slot] = malloc(CACHE_BYTES);
    memset(cache[slot], 0, CACHE_BYTES);
}

NOINLINE static void handle_work(long id)
{
    char *tmp = malloc(2048 + (size_t)id % 512);
    memset(tmp, 1, 2048);
    cache_put(id);
    remember_request(id);
    free(tmp);
}

static void reply(int fd, int status, const char *body)
{
    char buf[512];
    int n = snprintf(buf, sizeof buf, "HTTP/1.0 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n\r\n%s",
                     status, status == 200 ? "OK" : status == 503 ? "Service Unavailable" : "Not Found",
                     strlen(body), body);
    if (write(fd, buf, (size_t)n) < 0)
        perror("write");
}

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: http_service PORT [READY_FILE]\n");
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 16)) {
        perror("bind");
        return 1;
    }
    fcntl(s, F_SETFL, O_NONBLOCK);
    struct timespec start, now, pause = {0, 5000000};
    clock_gettime(CLOCK_MONOTONIC, &start);
    long next_id = 0;
    while (!stop) {
        if (!warm) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 >= WARMUP_MS) {
                for (int i = 0; i < CACHE_SLOTS; i++, next_id++)
                    handle_work(next_id); /* warm-up fills the cache */
                warm = 1;
                printf("ready on port %s\n", argv[1]);
                fflush(stdout);
                if (argc > 2)
                    close(open(argv[2], O_CREAT | O_WRONLY, 0644));
            }
        }
        int c = accept(s, NULL, NULL);
        if (c < 0) {
            nanosleep(&pause, NULL);
            continue;
        }
        fcntl(c, F_SETFL, 0);
        char req[1024];
        ssize_t n = read(c, req, sizeof req - 1);
        req[n > 0 ? n : 0] = '\0';
        long count;
        if (strncmp(req, "GET /health ", 12) == 0) {
            reply(c, warm ? 200 : 503, warm ? "ok\n" : "warming up\n");
        } else if (sscanf(req, "GET /work?n=%ld ", &count) == 1 && warm) {
            for (long i = 0; i < count; i++, next_id++)
                handle_work(next_id);
            reply(c, 200, "done\n");
        } else {
            reply(c, 404, "no\n");
        }
        close(c);
    }
    printf("served %ld requests\n", next_id);
    return 0;
}
