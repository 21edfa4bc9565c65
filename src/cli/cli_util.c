/* cli_util.c — shared pieces of the CLI commands (see cli_util.h). */
#include "cli/cli_util.h"
#include "common/grow.h"
#include "common/units.h"

#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cli_error(const char *fmt, ...)
{
    va_list ap;
    fputs("memledger: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "memledger %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'memledger %s --help'.\n", cmd);
    return ML_EXIT_USAGE;
}

ml_snapshot_t *cli_load(const char *path)
{
    char err[1024];
    ml_snapshot_t *s = ml_snapshot_load(path, err, sizeof err);
    if (!s)
        cli_error("%s", err);
    return s;
}

static const char *base_name(const char *p)
{
    const char *b = strrchr(p, '/');
    return b ? b + 1 : p;
}

const char *cli_frame_text(const ml_sframe_t *f, bool module, char *buf, size_t cap)
{
    char loc[1024] = "";
    if (f->file && f->line)
        snprintf(loc, sizeof loc, "%s:%d", f->file, f->line);
    else if (f->file)
        snprintf(loc, sizeof loc, "%s", f->file);
    if (f->kind == ML_FRAME_PYTHON) {
        snprintf(buf, cap, "%s in %s", loc[0] ? loc : "?", f->function ? f->function : "?");
        return buf;
    }
    char fn[64];
    const char *name = f->function;
    if (!name) {
        snprintf(fn, sizeof fn, "0x%llx", (unsigned long long)f->offset);
        name = fn;
    }
    int n = f->cython ? snprintf(buf, cap, "%s (Cython: %s)", f->cython, name) : snprintf(buf, cap, "%s", name);
    if (loc[0] && n >= 0 && (size_t)n < cap)
        n += snprintf(buf + n, cap - (size_t)n, " at %s", loc);
    if (f->is_inlined && n >= 0 && (size_t)n < cap)
        n += snprintf(buf + n, cap - (size_t)n, " (inlined)");
    if (module && f->module && n >= 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, " [%s]", base_name(f->module));
    return buf;
}

void cli_json_str(FILE *out, const char *s)
{
    if (!s) {
        fputs("null", out);
        return;
    }
    fputc('"', out);
    /* runs of characters that need no escape go out in one write */
    const unsigned char *p = (const unsigned char *)s, *run = p;
    for (;; p++) {
        unsigned char c = *p;
        if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)
            continue;
        if (p > run)
            fwrite(run, 1, (size_t)(p - run), out);
        if (!c)
            break;
        switch (c) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        default: fprintf(out, "\\u%04x", c);
        }
        run = p + 1;
    }
    fputc('"', out);
}

void cli_json_frame(FILE *out, const ml_sframe_t *f)
{
    fputs("{\"kind\":", out);
    fputs(f->kind == ML_FRAME_PYTHON ? "\"python\"" : "\"native\"", out);
    fputs(",\"function\":", out);
    cli_json_str(out, f->function);
    fputs(",\"file\":", out);
    cli_json_str(out, f->file);
    fputs(",\"line\":", out);
    if (f->line > 0)
        fprintf(out, "%d", f->line);
    else
        fputs("null", out);
    fputs(",\"module\":", out);
    cli_json_str(out, f->module);
    if (f->kind == ML_FRAME_NATIVE) {
        fprintf(out, ",\"offset\":\"0x%llx\",\"build_id\":", (unsigned long long)f->offset);
        cli_json_str(out, f->build_id);
        if (f->cython) {
            fputs(",\"cython\":", out);
            cli_json_str(out, f->cython);
        }
        if (f->is_inlined)
            fputs(",\"inlined\":true", out);
    }
    fputc('}', out);
}

void cli_json_frames(FILE *out, const ml_stackset_t *set, const ml_sstack_t *st)
{
    ml_sframe_t view;
    for (uint32_t j = 0, n = cli_shown_count(set, st); j < n; j++) {
        if (j)
            fputc(',', out);
        cli_json_frame(out, cli_shown_frame(set, st, j, &view));
    }
}

uint32_t cli_shown_count(const ml_stackset_t *set, const ml_sstack_t *st)
{
    return cli_shown_index(set, st, st->nframes);
}

uint32_t cli_shown_index(const ml_stackset_t *set, const ml_sstack_t *st, uint32_t i)
{
    uint32_t j = 0;
    for (uint32_t f = 0; f < i && f < st->nframes; f++)
        j += ml_stackset_frame(set, st->frames[f])->ninlined + 1;
    return j;
}

/* Stacks are tens of frames and inlined chains a few: walking from the
 * innermost each time costs less than keeping an expanded copy. */
const ml_sframe_t *cli_shown_frame(const ml_stackset_t *set, const ml_sstack_t *st, uint32_t j,
                                   ml_sframe_t *view)
{
    for (uint32_t f = 0; f < st->nframes; f++) {
        const ml_sframe_t *fr = ml_stackset_frame(set, st->frames[f]);
        if (j < fr->ninlined)
            return ml_sframe_inlined(fr, j, view);
        if (j == fr->ninlined)
            return fr;
        j -= fr->ninlined + 1;
    }
    return NULL;
}

const char *cli_bytes(int64_t bytes, bool sign, char *buf, size_t cap)
{
    char human[32];
    ml_human_size(human, sizeof human, bytes);
    const char *plus = sign && bytes > 0 ? "+" : "";
    if (bytes > -1024 && bytes < 1024)
        snprintf(buf, cap, "%s%lld B", plus, (long long)bytes);
    else
        snprintf(buf, cap, "%s%lld B (%s%s)", plus, (long long)bytes, plus, human);
    return buf;
}

bool cli_list_push(cli_list_t *l, const char *s)
{
    if (!ML_GROW(l->v, l->cap, l->n + 1))
        return false;
    l->v[l->n++] = s;
    return true;
}

void cli_set_patterns(ml_growth_opts_t *g, const cli_list_t *inc, const cli_list_t *exc)
{
    g->include = inc->v;
    g->ninclude = inc->n;
    g->exclude = exc->v;
    g->nexclude = exc->n;
}

const char *cli_human(int64_t bytes, bool sign, char *buf, size_t cap)
{
    char h[32];
    ml_human_size(h, sizeof h, bytes);
    snprintf(buf, cap, "%s%s", sign && bytes > 0 ? "+" : "", h);
    return buf;
}

bool cli_color(FILE *out, const char *mode)
{
    if (mode && strcmp(mode, "always") == 0)
        return true;
    if (mode && strcmp(mode, "never") == 0)
        return false;
    const char *no = getenv("NO_COLOR");
    return !(no && *no) && isatty(fileno(out));
}

const char *cli_frame_name(const ml_sframe_t *f, char *buf, size_t cap)
{
    if (f->cython && f->function)
        snprintf(buf, cap, "%s (Cython: %s)", f->cython, f->function);
    else if (f->function)
        snprintf(buf, cap, "%s", f->function);
    else if (f->kind == ML_FRAME_NATIVE && f->module)
        snprintf(buf, cap, "%s+0x%llx", base_name(f->module), (unsigned long long)f->offset);
    else if (f->kind == ML_FRAME_NATIVE)
        snprintf(buf, cap, "0x%llx", (unsigned long long)f->offset);
    else
        snprintf(buf, cap, "?");
    return buf;
}

bool cli_find_library(char *out, size_t cap)
{
    const char *env = getenv("MEMLEDGER_LIB");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return access(out, R_OK) == 0;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return false;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash)
        return false;
    *slash = '\0';
    const char *candidates[] = {"%s/libmemledger.so", "%s/" ML_LIBDIR_REL "/libmemledger.so"};
    for (size_t i = 0; i < sizeof candidates / sizeof *candidates; i++) {
        char path[PATH_MAX + 64];
        snprintf(path, sizeof path, candidates[i], self);
        if (access(path, R_OK) == 0) {
            char *real = realpath(path, NULL);
            snprintf(out, cap, "%s", real ? real : path);
            free(real);
            return true;
        }
    }
    return false;
}
