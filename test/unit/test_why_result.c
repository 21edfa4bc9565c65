/* test_why_result.c — src/cli/why_result.c, the reader of the answer a
 * process writes for `memledger why`: a well-formed answer reads back
 * field by field (escapes, absent fields, native and elided hops, several
 * stacks), and every malformed one is refused with the file and line of
 * the problem (bad magic or version, records out of order or of the
 * wrong width, bad numbers and escapes, unknown root kinds, a truncated
 * file, data after the end). */
#include "check.h"
#include "cli/why_result.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/ml_why_result.XXXXXX";

static const char *put(const char *name, const char *text)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

#define HEAD "memledger-why\t1\ntoken\t00ff00ff00ff00ff\npid\t42\nseq\t3\n"

static const char good[] =
    HEAD "python\t3.11.2\t1\t-\n"
    "gc\t0\t812\t3\t1\n"
    "time\tgil_wait_us\t12\tpause_us\t4100\trun_us\t106400\tscan_us\t102000\n"
    "objects\t25017\t18981\n"
    "heap\t70000\t140000\t9000000\t2\t1\n"
    "stopped\ta note\\twith a tab\n"
    "stack\t0\t6155\t2\n"
    "sample\t0\t7f0012345670\t2049\tpython\n"
    "root\tglobal\t__main__\t-\t-\t-1\t-\n"
    "hop\tmodule\tglobal\thistory\t-\n"
    "hop\tlist\tindex\t721\t-\n"
    "native\tbytearray\t20\t56\tpython\n"
    "end_sample\n"
    "sample\t0\t7f0012345980\t2049\tpython\n"
    "root\tunreachable\t-\t-\t-\t-1\tdict\n"
    "hop\tdict\tkey\t'pay\\\\load'\t-\n"
    "elided\t9978\n"
    "hop\tNode\tattribute\tpayload\t-\n"
    "object\tbytes\n"
    "end_sample\n"
    "stack\t1\t0\t0\n"
    "end\n";

static void reads_a_good_answer(void)
{
    char err[512] = "";
    ml_why_result_t *r = ml_why_result_load(put("good", good), err, sizeof err);
    CHECK(r != NULL);
    if (!r) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    CHECK(strcmp(r->token, "00ff00ff00ff00ff") == 0);
    CHECK_EQ(r->pid, 42);
    CHECK_EQ(r->seq, 3);
    CHECK(r->searched && r->has_gc && !r->gc_enabled && !r->why_not);
    CHECK(strcmp(r->py_version, "3.11.2") == 0);
    CHECK_EQ(r->gc_count[0], 812);
    CHECK_EQ(r->gc_count[2], 1);
    CHECK_EQ(r->gil_wait_us, 12);
    CHECK_EQ(r->pause_us, 4100);
    CHECK_EQ(r->run_us, 106400);
    CHECK_EQ(r->scan_us, 102000);
    CHECK_EQ(r->objects, 25017);
    CHECK_EQ(r->visited, 18981);
    CHECK_EQ(r->blocks_seen, 70000);
    CHECK_EQ(r->bytes_scanned, 9000000);
    CHECK_EQ(r->levels, 2);
    CHECK_EQ(r->read_failures, 1);
    CHECK_EQ(r->nstopped, 1);
    CHECK(strcmp(r->stopped[0], "a note\twith a tab") == 0);
    CHECK_EQ(r->nstacks, 2);
    const ml_why_rstack_t *s = ml_why_result_stack(r, 0);
    CHECK(s && s->live_blocks == 6155 && s->nsamples == 2);
    CHECK(ml_why_result_stack(r, 1) && ml_why_result_stack(r, 1)->nsamples == 0);
    CHECK(ml_why_result_stack(r, 2) == NULL);
    if (s && s->nsamples == 2) {
        const ml_why_rsample_t *a = &s->samples[0], *b = &s->samples[1];
        CHECK_EQ(a->addr, 0x7f0012345670ull);
        CHECK_EQ(a->size, 2049);
        CHECK(strcmp(a->kind, "global") == 0 && strcmp(a->a, "__main__") == 0 && !a->b && !a->type);
        CHECK_EQ(a->line, -1);
        CHECK_EQ(a->nhops, 3);
        CHECK(strcmp(a->hops[1].name, "721") == 0 && !a->hops[1].native && !a->hops[1].func);
        CHECK(a->hops[2].native && a->hops[2].off == 0x20 && a->hops[2].size == 56);
        CHECK(strcmp(a->hops[2].type, "bytearray") == 0 && strcmp(a->hops[2].domain, "python") == 0);
        CHECK(!a->object && !a->elided);
        CHECK(strcmp(b->kind, "unreachable") == 0 && strcmp(b->type, "dict") == 0);
        CHECK(strcmp(b->hops[0].name, "'pay\\load'") == 0);
        CHECK_EQ(b->elided, 9978);
        CHECK_EQ(b->elided_at, 1);
        CHECK(strcmp(b->object, "bytes") == 0);
    }
    ml_why_result_free(r);
}

/* Each bad answer is refused at the line named. */
static void refuses(const char *text, int line, const char *what)
{
    char err[512] = "", want[64];
    const char *path = put("bad", text);
    ml_why_result_t *r = ml_why_result_load(path, err, sizeof err);
    CHECK(r == NULL);
    snprintf(want, sizeof want, "bad:%d: ", line);
    bool ok = strstr(err, want) != NULL && strstr(err, what) != NULL;
    if (!ok)
        fprintf(stderr, "  wanted line %d and '%s', got '%s'\n", line, what, err);
    CHECK(ok);
    ml_why_result_free(r);
}

static void refuses_bad_answers(void)
{
    refuses("", 1, "truncated");
    refuses("memledger-snapshot\t2\nend\n", 1, "not a memledger why answer");
    refuses("memledger-why\t7\nend\n", 1, "version 7");
    refuses(HEAD "python\t3.11\t1\n", 5, "unrecognised record");
    refuses(HEAD "gc\t0\tx\t1\t1\n", 5, "bad gc record");
    refuses(HEAD "time\tgil_wait_us\t-1\tpause_us\t1\trun_us\t1\tscan_us\t1\n", 5, "bad time record");
    refuses(HEAD "heap\t1\t1\t1\t99\t0\n", 5, "bad heap record");
    refuses(HEAD "sample\t0\t10\t1\tpython\n", 5, "sample before any stack");
    refuses(HEAD "stack\t64\t1\t1\n", 5, "bad stack slot");
    refuses(HEAD "stack\t0\t1\t1\nsample\t1\t10\t1\tpython\n", 6, "inside the stack of slot 0");
    refuses(HEAD "stack\t0\t1\t1\nsample\t0\tzz\t1\tpython\n", 6, "bad sample record");
    refuses(HEAD "stack\t0\t1\t1\nsample\t0\t10\t1\tpython\nhop\tlist\tindex\t1\t-\n", 7, "before its sample's root");
    refuses(HEAD "stack\t0\t1\t1\nsample\t0\t10\t1\tpython\nroot\tsomewhere\t-\t-\t-\t0\t-\n", 7, "unknown root kind");
    refuses(HEAD "stack\t0\t1\t1\nsample\t0\t10\t1\tpython\nroot\tnone\t\\q\t-\t-\t0\t-\n", 7, "bad root record");
    refuses(HEAD "stack\t0\t1\t1\nsample\t0\t10\t1\tpython\nroot\tnone\t-\t-\t-\t0\t-\n"
                 "root\tnone\t-\t-\t-\t0\t-\n", 8, "root without a sample");
    refuses(HEAD "stack\t0\t1\t1\nsample\t0\t10\t1\tpython\nroot\tnone\t-\t-\t-\t0\t-\n"
                 "native\tx\t-1\t1\tpython\n", 8, "bad native record");
    refuses(HEAD "stack\t0\t1\t1\nsample\t0\t10\t1\tpython\nend_sample\n", 7, "end_sample without");
    refuses(HEAD "end\nend\n", 6, "data after the end");
    refuses(HEAD "stack\t0\t1\t1\n", 6, "truncated");
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(reads_a_good_answer);
    RUN(refuses_bad_answers);
    unlink(put("good", ""));
    unlink(put("bad", ""));
    rmdir(dir);
    return check_failures != 0;
}
