"""`memledger export` read by the tools it is for.
  pprof      the real `go tool pprof` (Debian's golang-go, offline) reads
             the growth of growth_phases (snapshot 3 over snapshot 1): its
             top entry is the leak, keep_copy, with its exact bytes; the
             sample types, the mapping's build-id and a hand-made
             snapshot's Python frames (function, file and line) come
             through; without --base it is live memory.
  collapsed  one `root;...;leaf BYTES` line per path: the leak's lines end
             in their exact byte counts, outermost frame first.
Also: the file appears whole (no temporary left behind), and bad usage
exits 2."""
import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile

from mltest import *

LEAK_PER_STACK, CACHE_PER_STACK = 409600, 65536
LIVE_LEAK_PER_STACK = (24 + 100) * 4096  # warm-up's 24 requests per entry point and two rounds of 50

mode = sys.argv[1]
snaps = growth_phases_snapshots()
out = snapdir("mltest.export.")


def export(*args, expect_rc=0):
    return cli("export", *args, expect_rc=expect_rc)


def go_pprof(*args):
    go = shutil.which("go")
    check(go, "go is not installed (Debian package golang-go; scripts/setup-deps test)")
    home = tempfile.mkdtemp(prefix="mltest.go.")
    env = dict(os.environ, HOME=home, GOCACHE=os.path.join(home, "cache"), GOPATH=os.path.join(home, "gopath"),
               GOFLAGS="", GOPROXY="off", GOTOOLCHAIN="local", GOTELEMETRY="off", PPROF_TMPDIR=home)
    p = subprocess.run([go, "tool", "pprof"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, env=env, timeout=300)
    check(p.returncode == 0, "go tool pprof %s exited %d: %s" % (" ".join(args), p.returncode, p.stderr))
    shutil.rmtree(home, ignore_errors=True)
    return p.stdout


def top_entries(text):
    """(flat, name) of each -top row; flat in bytes with -unit=B."""
    rows, seen = [], False
    for line in text.splitlines():
        if re.match(r"\s*flat\s+flat%", line):
            seen = True
            continue
        m = re.match(r"\s*(\d+)B?\s+[\d.]+%\s+[\d.]+%\s+(\d+)B?\s+[\d.]+%\s+(.*)$", line)
        if seen and m:
            rows.append((int(m.group(1)), m.group(3).strip()))
    return rows


if mode == "pprof":
    pb = os.path.join(out, "growth.pb.gz")
    export(snaps[2], "--base", snaps[0], "--format", "pprof", "-o", pb)
    with open(pb, "rb") as f:
        check(f.read(2) == b"\x1f\x8b", "the pprof file is not gzipped")
    gzip.open(pb).read()  # a complete gzip stream
    top = go_pprof("-top", "-unit=B", pb)
    rows = top_entries(top)
    check(rows, "no rows in go tool pprof -top:\n" + top)
    check(rows[0] == (2 * LEAK_PER_STACK, "keep_copy"),
          "top entry %s, expected keep_copy with %d B:\n%s" % (rows[0], 2 * LEAK_PER_STACK, top))
    check(("Type: inuse_space" in top) and ("Total samples = %dB" % (2 * LEAK_PER_STACK + 2 * CACHE_PER_STACK)) in top,
          top)
    # the cache: 16 entries grew (inuse), 200 were allocated since the base (alloc)
    objects = top_entries(go_pprof("-top", "-sample_index=inuse_objects", pb))
    check(dict((n, v) for v, n in objects).get("keep_copy") == 200, "inuse_objects: %s" % objects)
    alloc = top_entries(go_pprof("-top", "-unit=B", "-sample_index=alloc_space", pb))
    check(dict((n, v) for v, n in alloc).get("__strdup") == 200 * 8192, "alloc_space: %s" % alloc)
    raw = go_pprof("-raw", pb)
    check("inuse_space/bytes[dflt] inuse_objects/count alloc_space/bytes alloc_objects/count" in raw, raw[:600])
    bid = subprocess.run(["readelf", "-n", os.path.join(PROGRAMS, "growth_phases")], stdout=subprocess.PIPE,
                         text=True).stdout
    m = re.search(r"Build ID: ([0-9a-f]+)", bid)
    check(m and re.search(r"/growth_phases %s \[FN\]" % m.group(1), raw), "mapping without the build-id:\n" + raw)
    check(re.search(r"keep_copy \S*growth_phases\.c:%d" % marker_line(os.path.join(SOURCE, "programs",
                                                                                  "growth_phases.c"), "leak"), raw),
          "keep_copy's location has no file:line:\n" + raw)
    # without --base: live memory of the head
    live = os.path.join(out, "live.pb.gz")
    export(snaps[2], "--format", "pprof", "-o", live)
    lrows = dict((n, v) for v, n in top_entries(go_pprof("-top", "-unit=B", live)))
    check(lrows.get("keep_copy") == 2 * LIVE_LEAK_PER_STACK, "live keep_copy %s" % lrows.get("keep_copy"))

    # Python frames: functions with their .py file and line, under the interpreter's native frames
    py = write_snapshot(os.path.join(out, "py.snap"), modules=[("ab" * 20, "/usr/lib/libpython3.11.so.1.0")],
                        stacks=[("python", 3 << 20, 3, [("native", 0, 0x1234, "PyMem_Malloc", None, None),
                                                        ("python", "load_weights", "/srv/app/model.py", 42),
                                                        ("python", "handle", "/srv/app/serve.py", 7)]),
                                ("python", 1 << 20, 1, [("native", 0, 0x1234, "PyMem_Malloc", None, None),
                                                        ("python", "tokenize", "/srv/app/text.py", 19),
                                                        ("python", "handle", "/srv/app/serve.py", 9)])])
    pypb = os.path.join(out, "py.pb.gz")
    export(py, "--format", "pprof", "-o", pypb)
    lines = top_entries(go_pprof("-top", "-lines", "-unit=B", "-focus=load_weights", pypb))
    check(any(v == 3 << 20 and n.startswith("PyMem_Malloc") for v, n in lines), "%s" % lines)
    cum = go_pprof("-top", "-lines", "-cum", "-unit=B", pypb)
    check(re.search(r"\b%d\s*B?\s+[\d.]+%%\s+load_weights /srv/app/model\.py:42\b" % (3 << 20), cum) and
          re.search(r"handle /srv/app/serve\.py:7\b", cum), "Python frames without file:line:\n" + cum)
    check(not [f for f in os.listdir(out) if f.startswith(".")], "temporary files left: %s" % os.listdir(out))
    print("ok: go tool pprof -top: keep_copy %d B first; types, build-id, Python file:line" % (2 * LEAK_PER_STACK))

elif mode == "collapsed":
    path = os.path.join(out, "growth.folded")
    export(snaps[2], "--base", snaps[0], "--format", "collapsed", "-o", path)
    with open(path) as f:
        lines = f.read().splitlines()
    check(len(lines) == 4, "expected 4 paths that grew, got:\n" + "\n".join(lines))
    for entry in ("serve_get", "serve_post"):
        leak = [l for l in lines if l.split(" ")[0].endswith(";keep_copy") and (";%s;" % entry) in l]
        check(len(leak) == 1 and leak[0].endswith(" %d" % LEAK_PER_STACK),
              "leak line via %s: %s" % (entry, leak))
        path_ = leak[0].rsplit(" ", 1)[0].split(";")
        check(path_[0] == "_start" and path_[-4:] == ["serve", entry, "handle", "keep_copy"],
              "frames are not root first: %s" % path_)
        cache = [l for l in lines if (";%s;handle;cache_put;__strdup " % entry) in l]
        check(len(cache) == 1 and cache[0].endswith(" %d" % CACHE_PER_STACK), "cache line: %s" % cache)
    # live memory without --base, to standard output
    live = export(snaps[2], "--format", "collapsed", "-o", "-").stdout.splitlines()
    leak = [l for l in live if l.split(" ")[0].endswith(";serve_get;handle;keep_copy")]
    check(len(leak) == 1 and leak[0].endswith(" %d" % LIVE_LEAK_PER_STACK), "live leak line: %s" % leak)
    check(all(re.match(r"^\S.* \d+$", l) for l in live), "a line is not 'path BYTES'")
    # names with ';', tabs or spaces stay one frame each
    odd = write_snapshot(os.path.join(out, "odd.snap"), stacks=[
        ("malloc", 1000, 1, [("native", None, 0x10, "operator new(unsigned long)", None, None),
                             ("native", None, 0x20, "weird;name\twith tab", None, None)])])
    text = export(odd, "--format", "collapsed", "-o", "-").stdout
    check(text == "weird:name with tab;operator new(unsigned long) 1000\n", repr(text))
    # paths that read the same (one function at two offsets) are one line,
    # their bytes summed; distinct paths keep the rows' order, largest first
    same = write_snapshot(os.path.join(out, "same.snap"), stacks=[
        ("malloc", 1000, 1, [("native", None, 0x30, "leaf", None, None), ("native", None, 0x10, "root", None, None)]),
        ("malloc", 2500, 1, [("native", None, 0x50, "other", None, None), ("native", None, 0x10, "root", None, None)]),
        ("malloc", 2000, 1, [("native", None, 0x40, "leaf", None, None), ("native", None, 0x10, "root", None, None)])])
    text = export(same, "--format", "collapsed", "-o", "-").stdout
    check(text == "root;other 2500\nroot;leaf 3000\n", repr(text))
    print("ok: collapsed leak lines end in %d (growth) and %d (live)" % (LEAK_PER_STACK, LIVE_LEAK_PER_STACK))

# usage: exit 2
for args in ([snaps[2]], [snaps[2], "--format", "svg", "-o", "x"], [snaps[2], "--format", "html"],
             ["--format", "html", "-o", "x"], [snaps[2], snaps[1], "--format", "html", "-o", "x"],
             [snaps[2], "--format", "html", "-o", "x", "--domain", "gpu"]):
    p = export(*args, expect_rc=2)
    check("Try 'memledger export --help'" in p.stderr, "%s: %s" % (args, p.stderr))
p = export(os.path.join(out, "missing.snap"), "--format", mode, "-o", os.path.join(out, "x"), expect_rc=2)
check("missing.snap" in p.stderr and not os.path.exists(os.path.join(out, "x")), p.stderr)
p = export(snaps[2], "--format", mode, "-o", os.path.join(out, "no", "such", "dir", "x"), expect_rc=1)
check("/no/such/dir/x" in p.stderr, p.stderr)
