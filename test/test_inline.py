"""Inlined frames (issue 16): programs/inline_chain (C++, -O2 -g) keeps 300
blocks of 1,234 bytes between two snapshots, through chain_a -> chain_b ->
chain_c, all three always inlined into leak_round, whose one call to malloc
is chain_c's line. Every output names each inlined function with its line,
innermost first, then the real function at the line chain_a was called
from: the snapshot's `inline` records, `diff --format json` (frames with
"inlined": true, user_frame pointing at chain_c), diff's and top's text,
`export --format collapsed` (each function its own entry) and
`export --format pprof` read by `go tool pprof -lines` (one location whose
lines go innermost first). The figures are exact: +370,200 bytes in +300
blocks."""
import os
import re
import shutil
import subprocess
import tempfile

from mltest import *

BLOCKS, SIZE = 300, 1234
SRC = os.path.join(SOURCE, "programs", "inline_chain.cpp")
EXE = os.path.join(PROGRAMS, "inline_chain")
lines = {m: marker_line(SRC, m, tag="LINE") for m in ("c", "b", "a", "round")}
# innermost first: the line running in each function at the call to malloc
want = [("chain_c", lines["c"], True), ("chain_b", lines["b"], True), ("chain_a", lines["a"], True),
        ("leak_round(unsigned long)", lines["round"], False)]

# the compiler really inlined them: malloc is called from leak_round itself
dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-C", EXE], stdout=subprocess.PIPE, text=True).stdout
body = re.search(r"<leak_round\(unsigned long\)>:\n(.*?)\n\n", dis, re.S)
check(body and re.search(r"call\s+\S+ <malloc@plt>", body.group(1)) and "chain_" not in body.group(1),
      "leak_round does not call malloc itself (not inlined?):\n%s" % (body and body.group(1)))

d = snapdir("mltest.inline.")
p = run_under([EXE], d)
check(p.stdout.strip().splitlines()[-1] == '{"kept": %d}' % BLOCKS, "the program said %r" % p.stdout)
s1, s2 = snapshots_of(d)

# the snapshot: the frame is leak_round at chain_a's call, its inline records the rest
snap = read_snapshot(s2)
frames = [f for f in snap["frames"] if f["function"] == "_Z10leak_roundm"]
check(len(frames) == 1, "frames of leak_round: %s" % frames)
got = [(i["function"], i["file"], i["line"]) for i in frames[0].get("inlined", [])]
check(got == [("chain_c", SRC, lines["c"]), ("chain_b", SRC, lines["b"]), ("chain_a", SRC, lines["a"])],
      "inline records: %s" % got)
check((frames[0]["file"], frames[0]["line"]) == (SRC, lines["round"]), "leak_round's frame: %s" % frames[0])

# diff --format json: one stack, exact figures, the chain innermost first
r = diff_json(s1, s2)
rows = [s for s in r["stacks"] if s["domain"] == "malloc" and s["growth_bytes"] > 0]
check(len(rows) == 1, "stacks that grew: %s" % rows)
row = rows[0]
check((row["growth_bytes"], row["growth_count"], row["live_count"]) == (BLOCKS * SIZE, BLOCKS, BLOCKS),
      "the leak grew %d B in %d blocks, expected %d in %d" % (row["growth_bytes"], row["growth_count"],
                                                             BLOCKS * SIZE, BLOCKS))
shown = [(f["function"], f["file"], f["line"], f.get("inlined", False)) for f in row["frames"][:4]]
check(shown == [(fn, SRC, ln, inl) for fn, ln, inl in want], "json frames: %s" % shown)
check(len(set((f["module"], f["offset"]) for f in row["frames"][:4])) == 1,
      "the inlined frames are not at leak_round's address: %s" % row["frames"][:4])
check(row["user_frame"] == 0, "user_frame %s, expected 0 (chain_c)" % row["user_frame"])
check(row["frames"][4]["function"] == "main" and "inlined" not in row["frames"][4], row["frames"][4])
print("ok: diff json: +%d B in +%d blocks at %s" % (BLOCKS * SIZE, BLOCKS,
                                                     " < ".join("%s:%d" % (fn, ln) for fn, ln, _ in want)))

# text: diff and top list each, in order
def text_lines(fn, ln, inl):
    return "%s at %s:%d%s [inline_chain]" % (fn, SRC, ln, " (inlined)" if inl else "")


for what, text in (("diff", cli("diff", s1, s2).stdout), ("top", cli("top", s2, "-n", "0").stdout)):
    at = [text.find(text_lines(*w)) for w in want]
    check(all(a >= 0 for a in at) and at == sorted(at), "%s's text lacks the chain in order:\n%s" % (what, text))
check("+%d" % (BLOCKS * SIZE) in cli("diff", s1, s2).stdout, "diff's text lacks +%d" % (BLOCKS * SIZE))
print("ok: diff and top text list chain_c, chain_b, chain_a (inlined), then leak_round")

# collapsed: each inlined function its own entry, outermost first
folded = cli("export", s2, "--base", s1, "--format", "collapsed", "-o", "-").stdout.splitlines()
leak = [l for l in folded if ";leak_round(unsigned long);chain_a;chain_b;chain_c %d" % (BLOCKS * SIZE) in l]
check(len(leak) == 1 and leak[0].endswith(";main;leak_round(unsigned long);chain_a;chain_b;chain_c %d"
                                          % (BLOCKS * SIZE)), "collapsed:\n%s" % "\n".join(folded))
print("ok: collapsed ...;main;leak_round;chain_a;chain_b;chain_c %d" % (BLOCKS * SIZE))

# pprof, read by the real go tool pprof
go = shutil.which("go")
check(go, "go is not installed (Debian package golang-go; scripts/setup-deps test)")
pb = os.path.join(d, "inline.pb.gz")
cli("export", s2, "--base", s1, "--format", "pprof", "-o", pb)


def go_pprof(*args):
    home = tempfile.mkdtemp(prefix="mltest.go.")
    env = dict(os.environ, HOME=home, GOCACHE=os.path.join(home, "cache"), GOPATH=os.path.join(home, "gopath"),
               GOFLAGS="", GOPROXY="off", GOTOOLCHAIN="local", GOTELEMETRY="off", PPROF_TMPDIR=home)
    q = subprocess.run([go, "tool", "pprof"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, env=env, timeout=300)
    shutil.rmtree(home, ignore_errors=True)
    check(q.returncode == 0, "go tool pprof %s exited %d: %s" % (" ".join(args), q.returncode, q.stderr))
    return q.stdout


top = go_pprof("-lines", "-top", "-unit=B", pb)
check(re.search(r"^\s*%dB\s+100%%\s+100%%\s+%dB\s+100%%\s+chain_c %s:%d \(inline\)$"
                % (BLOCKS * SIZE, BLOCKS * SIZE, re.escape(SRC), lines["c"]), top, re.M),
      "go tool pprof -lines -top does not put chain_c:%d first with %d B:\n%s" % (lines["c"], BLOCKS * SIZE, top))
for fn, ln, inl in want[1:]:
    check(re.search(r"\s%dB\s+100%%\s+%s %s:%d%s$" % (BLOCKS * SIZE, re.escape(fn), re.escape(SRC), ln,
                                                     r" \(inline\)" if inl else ""), top, re.M),
          "go tool pprof -lines -top lacks %s:%d:\n%s" % (fn, ln, top))
traces = go_pprof("-lines", "-traces", pb)
trace = [l.strip() for l in traces.splitlines()]
at = [trace.index(next(l for l in trace if l.endswith("%s %s:%d%s" % (fn, SRC, ln, " (inline)" if inl else ""))))
      for fn, ln, inl in want]
check(at == list(range(at[0], at[0] + 4)), "go tool pprof -traces: not in order:\n%s" % traces)
print("ok: go tool pprof -lines: chain_c:%d (inline) %d B first; chain_b:%d, chain_a:%d (inline), leak_round:%d"
      % (lines["c"], BLOCKS * SIZE, lines["b"], lines["a"], lines["round"]))
