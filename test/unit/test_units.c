/* test_units.c — sizes, durations, signals, the formatter and escaping. */
#include "check.h"
#include "common/config.h"
#include "common/io.h"
#include "common/units.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

static void test_sizes(void)
{
    uint64_t v;
    CHECK(ml_parse_size("4096", &v) && v == 4096);
    CHECK(ml_parse_size("512KiB", &v) && v == 512 * 1024);
    CHECK(ml_parse_size("1.5MiB", &v) && v == 3 * 512 * 1024);
    CHECK(ml_parse_size("2GiB", &v) && v == 2ull << 30);
    CHECK(ml_parse_size("50MiB", &v) && v == 50ull << 20);
    CHECK(ml_parse_size("10B", &v) && v == 10);
    CHECK(ml_parse_size("1k", &v) && v == 1024);
    CHECK(!ml_parse_size("", &v));
    CHECK(!ml_parse_size("-1", &v));
    CHECK(!ml_parse_size("12XB", &v));
    CHECK(!ml_parse_size("1.5B", &v));
    CHECK(!ml_parse_size("99999999999999999999", &v));
    CHECK(!ml_parse_size("MiB", &v));
}

static void test_durations(void)
{
    uint64_t v;
    CHECK(ml_parse_duration_ms("30", &v) && v == 30000);
    CHECK(ml_parse_duration_ms("2.5", &v) && v == 2500);
    CHECK(ml_parse_duration_ms("250ms", &v) && v == 250);
    CHECK(ml_parse_duration_ms("5m", &v) && v == 300000);
    CHECK(ml_parse_duration_ms("1h", &v) && v == 3600000);
    CHECK(!ml_parse_duration_ms("-3", &v));
    CHECK(!ml_parse_duration_ms("3 days", &v));
    CHECK(!ml_parse_duration_ms("", &v));
}

static void test_signals(void)
{
    int s;
    CHECK(ml_parse_signal("USR2", &s) && s == SIGUSR2);
    CHECK(ml_parse_signal("SIGUSR1", &s) && s == SIGUSR1);
    CHECK(ml_parse_signal("12", &s) && s == 12);
    CHECK(ml_parse_signal("off", &s) && s == 0);
    CHECK(ml_parse_signal("RTMIN+3", &s) && s == SIGRTMIN + 3);
    CHECK(!ml_parse_signal("KILL", &s));
    CHECK(!ml_parse_signal("9", &s));
    CHECK(!ml_parse_signal("11", &s));
    CHECK(!ml_parse_signal("banana", &s));
}

static void test_fmt(void)
{
    char buf[128];
    ml_fmt(buf, sizeof buf, "%s=%d %u %x %llu %zu %%", "a", -42, 42u, 255u, 1ull << 40, (size_t)7);
    CHECK(strcmp(buf, "a=-42 42 ff 1099511627776 7 %") == 0);
    ml_fmt(buf, sizeof buf, "[%09llu]", 12345ull);
    CHECK(strcmp(buf, "[000012345]") == 0);
    ml_fmt(buf, 6, "%s", "truncated");
    CHECK(strcmp(buf, "trunc") == 0);
    CHECK(strcmp(ml_human_size(buf, sizeof buf, 1536), "1.5 KiB") == 0);
    CHECK(strcmp(ml_human_size(buf, sizeof buf, 100), "100 B") == 0);
    CHECK(strcmp(ml_human_size(buf, sizeof buf, -3 * 1048576), "-3.0 MiB") == 0);
}

static void test_field_escape(void)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    static ml_out_t o;
    ml_out_init(&o, fds[1]);
    ml_out_field(&o, "a\tb\nc\\d");
    ml_out_char(&o, ' ');
    ml_out_field(&o, NULL);
    ml_out_char(&o, ' ');
    ml_out_field(&o, "-");
    CHECK(ml_out_flush(&o));
    close(fds[1]);
    char buf[64] = {0};
    CHECK(read(fds[0], buf, sizeof buf - 1) > 0);
    CHECK(strcmp(buf, "a\\tb\\nc\\\\d - \\-") == 0);
    close(fds[0]);
}

int main(void)
{
    RUN(test_sizes);
    RUN(test_durations);
    RUN(test_signals);
    RUN(test_fmt);
    RUN(test_field_escape);
    return check_failures != 0;
}
