/* fuzz_snapshot.c — libFuzzer target: one snapshot file from memory through
 * the reader, and, when it is accepted, through everything a command does
 * with it: the address-free stack set, every frame rendered as text and as
 * JSON, every value looked up. Any crash, leak or undefined behaviour is a
 * finding (the build adds ASan and UBSan). */
#include "cli/cli_util.h"
#include "cli/snapshot_read.h"
#include "cli/stackset.h"

#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size == 0)
        return 0;
    FILE *fp = fmemopen((void *)data, size, "r");
    if (!fp)
        return 0;
    char err[1024];
    ml_snapshot_t *s = ml_snapshot_read(fp, "fuzz.snap", err, sizeof err);
    fclose(fp);
    if (!s)
        return 0;
    ml_stackset_t *set = ml_stackset_new();
    FILE *null = fopen("/dev/null", "w");
    if (set && null && ml_stackset_add(set, s) >= 0) {
        char buf[2048];
        for (size_t u = 0; u < ml_stackset_nstacks(set); u++) {
            const ml_sstack_t *st = ml_stackset_stack(set, (uint32_t)u);
            ml_sval_t v = ml_stackset_value(set, 0, (uint32_t)u);
            fprintf(null, "%s %lld\n", ml_domain_name(st->domain), (long long)v.live_bytes);
            for (uint32_t f = 0; f < st->nframes; f++) {
                const ml_sframe_t *fr = ml_stackset_frame(set, st->frames[f]);
                fputs(cli_frame_text(fr, true, buf, sizeof buf), null);
                cli_json_frame(null, fr);
            }
        }
        fputs(ml_snapshot_header(s, "cmdline") ? "" : "-", null);
    }
    if (null)
        fclose(null);
    ml_stackset_free(set);
    ml_snapshot_free(s);
    return 0;
}
