"""mltest — what the integration tests share: where the build is, running a
program under the ledger, reading snapshots through the memledger CLI, and
finding the line a LEAK marker sits on. Assertions stay in the tests."""
import atexit
import json
import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile

BUILD = os.environ.get("ML_BUILD") or os.path.join(os.path.dirname(__file__), "..", "build")
BUILD = os.path.abspath(BUILD)
LIB = os.path.join(BUILD, "libmemledger.so")
CLI = os.path.join(BUILD, "memledger")
PROGRAMS = os.path.join(BUILD, "test")
SOURCE = os.path.abspath(os.path.dirname(__file__))


_made_dirs = []
_failed = False


def fail(msg):
    global _failed
    _failed = True
    print("FAIL: " + msg, file=sys.stderr)
    if _made_dirs:
        print("(kept for a look: %s)" % " ".join(_made_dirs), file=sys.stderr)
    sys.exit(1)


@atexit.register
def _clean():
    """Scratch directories go when the test passes (ML_KEEP=1 keeps them)."""
    if _failed or os.environ.get("ML_KEEP"):
        return
    for d in _made_dirs:
        for root, dirs, _ in os.walk(d):
            for x in dirs:
                try:
                    os.chmod(os.path.join(root, x), 0o700)
                except OSError:
                    pass
        try:
            os.chmod(d, 0o700)
        except OSError:
            pass
        shutil.rmtree(d, ignore_errors=True)


def check(cond, msg):
    if not cond:
        fail(msg)


def snapdir(prefix="mltest."):
    d = tempfile.mkdtemp(prefix=prefix)
    _made_dirs.append(d)
    return d


def run_under(cmd, snap_dir, extra_env=None, preload=None, timeout=300, check_rc=True):
    env = dict(os.environ)
    env["MEMLEDGER_DIR"] = snap_dir
    env["LD_PRELOAD"] = preload or LIB
    env.update(extra_env or {})
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout)
    if check_rc and p.returncode != 0:
        fail("%s exited %d\nstdout:\n%s\nstderr:\n%s" % (cmd, p.returncode, p.stdout, p.stderr))
    return p


def cli(*args, expect_rc=0):
    p = subprocess.run([CLI] + [str(a) for a in args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=300)
    if expect_rc is not None and p.returncode != expect_rc:
        fail("memledger %s exited %d (wanted %d)\nstdout:\n%s\nstderr:\n%s"
             % (" ".join(map(str, args)), p.returncode, expect_rc, p.stdout, p.stderr))
    return p


def diff_json(*snaps, extra=()):
    return json.loads(cli("diff", *snaps, "--format", "json", *extra).stdout)


def top_json(snap, extra=()):
    return json.loads(cli("top", snap, "--format", "json", "-n", "0", *extra).stdout)


def snap_path(snap_dir, pid, seq):
    return os.path.join(snap_dir, "memledger.%d.%d.snap" % (pid, seq))


def marker_line(source, marker, tag="LEAK"):
    """The 1-based line of the source file that holds '/* LEAK:<marker> */'
    (or '# LEAK:<marker>' in Python sources; another tag such as MARK for
    lines that are not leaks)."""
    with open(source) as f:
        for i, line in enumerate(f, 1):
            if re.search(r"%s:%s\b" % (tag, re.escape(marker)), line):
                return i
    fail("no %s:%s marker in %s" % (tag, marker, source))


SKIP = 77  # ctest's SKIP_RETURN_CODE for the tests that need something absent


def skip(msg):
    """Ends the test as skipped, saying why (ctest shows it as skipped)."""
    print("SKIP: " + msg)
    sys.exit(SKIP)


PYENV = os.environ.get("PYENV_ROOT") or "/root/.pyenv"


def python_for(spec):
    """The interpreter for a test's Python: 'debian' is /usr/bin/python3, a
    version such as '3.11' is pyenv's newest 3.11.x. Skips the test, saying
    so, when that Python is not installed."""
    if spec == "debian":
        path = "/usr/bin/python3"
        if not os.access(path, os.X_OK):
            skip("Debian's /usr/bin/python3 is not installed")
        return path
    versions = os.path.join(PYENV, "versions")
    found = []
    if os.path.isdir(versions):
        for v in os.listdir(versions):
            parts = v.split(".")
            if ".".join(parts[:2]) == spec and len(parts) == 3 and parts[2].isdigit():
                exe = os.path.join(versions, v, "bin", "python" + spec)
                if os.access(exe, os.X_OK):
                    found.append((int(parts[2]), exe))
    if not found:
        skip("no CPython %s under %s" % (spec, versions))
    return max(found)[1]


def script_frames(stack, script):
    """The Python frames of a stack that belong to `script`, innermost first."""
    return [f for f in stack["frames"] if f["kind"] == "python" and f["file"] == script]


def growth_at(report, script, line):
    """Stacks whose innermost frame in `script` is at `line`, and the sum of
    their growth in bytes."""
    found = []
    for s in report["stacks"]:
        fr = script_frames(s, script)
        if fr and fr[0]["line"] == line:
            found.append(s)
    return found, sum(s["growth_bytes"] for s in found)


def within(measured, truth, tolerance=0.10):
    return abs(measured - truth) <= tolerance * truth


def innermost(stack):
    return stack["frames"][0] if stack["frames"] else {}


def stacks_at(report, function):
    """Stacks whose innermost frame is `function`."""
    return [s for s in report["stacks"] if innermost(s).get("function") == function]


def leftover_temp_files(snap_dir):
    return [f for f in os.listdir(snap_dir) if f.endswith(".tmp")]


def unescape_field(s):
    """A snapshot string field as text (docs/format.md: '-' is absent)."""
    if s == "-":
        return None
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            out.append({"t": "\t", "n": "\n", "r": "\r", "\\": "\\", "-": "-"}[s[i + 1]])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def open_snapshot(path):
    """A snapshot's text, whether the file is gzip-compressed (version 2,
    as the library writes) or plain (version 1, as write_snapshot makes)."""
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def read_snapshot(path):
    """Parses a snapshot file directly (independently of the CLI): a dict
    with 'headers' (key -> list of field lists), 'modules', 'frames' and
    'stacks' (each stack with its domain, figures, and frame dicts,
    innermost first). Stacks are as written: duplicates are not summed."""
    snap = {"headers": {}, "modules": [], "frames": [], "stacks": [], "nodes": [None]}
    with open_snapshot(path) as f:
        lines = f.read().split("\n")
    check(lines[-1] == "", "%s does not end in a newline" % path)
    lines = lines[:-1]
    check(lines and lines[0] in ("memledger-snapshot\t1", "memledger-snapshot\t2"), "%s: bad magic line" % path)
    snap["version"] = int(lines[0].split("\t")[1])
    for line in lines[1:]:
        f = line.split("\t")
        if f[0] == "module":
            snap["modules"].append({"index": int(f[1]), "build_id": unescape_field(f[2]),
                                    "state": f[5], "path": unescape_field(f[6])})
        elif f[0] == "frame":
            mod = None if f[3] == "-" else snap["modules"][int(f[3])]
            snap["frames"].append({"kind": f[2], "module": mod and mod["path"],
                                   "module_state": mod and mod["state"],
                                   "function": unescape_field(f[5]), "file": unescape_field(f[6]),
                                   "line": None if f[7] == "-" else int(f[7])})
        elif f[0] == "inline":  # a function inlined at the frame before it, innermost first
            snap["frames"][int(f[1])].setdefault("inlined", []).append(
                {"function": unescape_field(f[2]), "file": unescape_field(f[3]),
                 "line": None if f[4] == "-" else int(f[4])})
        elif f[0] in ("N", "n") and snap["version"] >= 2:
            k = len(snap["nodes"])  # this node's number
            snap["nodes"].append((k - 1 if f[0] == "N" else k - int(f[2]), int(f[1])))
        elif f[0] == "stack" or (f[0] == "s" and snap["version"] >= 2):
            if f[0] == "s":
                f = ["s", str(len(snap["stacks"]))] + f[1:]
            if f[7] == "-":
                frames = []
            elif snap["version"] >= 2:  # the leaf node, up to the root
                frames, n = [], int(f[7])
                while n:
                    parent, frame = snap["nodes"][n]
                    frames.append(snap["frames"][frame])
                    n = parent
            else:
                frames = [snap["frames"][int(i)] for i in f[7].split(" ")]
            snap["stacks"].append({"id": int(f[1]), "domain": f[2], "live_bytes": int(f[3]),
                                   "live_count": int(f[4]), "total_bytes": int(f[5]),
                                   "total_count": int(f[6]), "frames": frames})
        elif f[0] == "end":
            check(int(f[1]) == len(snap["stacks"]) and int(f[2]) == len(snap["frames"]) and
                  (snap["version"] < 2 or int(f[3]) == len(snap["nodes"]) - 1),
                  "%s: end record disagrees" % path)
            snap["complete"] = True
        else:
            snap["headers"].setdefault(f[0], []).append(f[1:])
    check(snap.get("complete"), "%s has no end record" % path)
    return snap


def header(snap, key, name=None):
    """The fields of header `key` (for `problem`/`domain`, the line named `name`)."""
    for fields in snap["headers"].get(key, []):
        if name is None or fields[0] == name:
            return fields if name is None else fields[1:]
    return None


def snapshots_of(snap_dir, pid=None):
    """Snapshot files in snap_dir (of pid, when given), in sequence order."""
    out = []
    for f in os.listdir(snap_dir):
        m = re.match(r"memledger\.(\d+)\.(\d+)\.snap$", f)
        if m and (pid is None or int(m.group(1)) == pid):
            out.append((int(m.group(1)), int(m.group(2)), os.path.join(snap_dir, f)))
    return [p for _, _, p in sorted(out)]


def _field(s):
    if s is None:
        return "-"
    if s == "-":
        return "\\-"
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def write_snapshot(path, stacks, pid=4242, seq=1, time=1700000000.0, modules=()):
    """Writes a snapshot by hand (docs/format.md), for tests that need names
    or shapes no real program gives. modules: [(build_id, path)];
    stacks: [(domain, live_bytes, live_count, frames)], frames innermost
    first, each ("native", module_index, offset, function, file, line) or
    ("python", function, file, line). Totals are twice the live figures."""
    frames, index = [], {}
    for _, _, _, fs in stacks:
        for f in fs:
            if f not in index:
                index[f] = len(frames)
                frames.append(f)
    doms = {}
    for d, b, c, _ in stacks:
        t = doms.setdefault(d, [0, 0])
        t[0] += b
        t[1] += c
    out = ["memledger-snapshot\t1", "pid\t%d" % pid, "ppid\t1", "exe\t/srv/app/bin/service",
           "cmdline\t/srv/app/bin/service", "time\t%.9f" % time, "seq\t%d" % seq, "trigger\tsignal",
           "rss\t%d" % (64 << 20), "peak_rss\t%d" % (64 << 20), "sample_bytes\t0", "depth\t64",
           "stacks\t%d\t262144\t0" % len(stacks)]
    for d in ("malloc", "python", "cuda", "cuda.managed", "cuda.host", "cuda.vmm"):
        b, c = doms.get(d, (0, 0))
        out.append("domain\t%s\t%d\t%d\t%d\t%d" % (d, b, c, 2 * b, 2 * c))
    for i, (bid, mpath) in enumerate(modules):
        out.append("module\t%d\t%s\t%x\t%x\tloaded\t%s" % (i, bid or "-", 0x7f0000000000 + i * 0x1000000, 0x100000,
                                                         _field(mpath)))
    for i, f in enumerate(frames):
        if f[0] == "native":
            _, m, off, fn, src, line = f
            out.append("frame\t%d\tnative\t%s\t%x\t%s\t%s\t%s" % (i, "-" if m is None else m, off, _field(fn),
                                                                  _field(src), line or "-"))
        else:
            _, fn, src, line = f
            out.append("frame\t%d\tpython\t-\t-\t%s\t%s\t%s" % (i, _field(fn), _field(src), line or "-"))
    for i, (d, b, c, fs) in enumerate(stacks):
        out.append("stack\t%d\t%s\t%d\t%d\t%d\t%d\t%s" % (i + 1, d, b, c, 2 * b, 2 * c,
                                                         " ".join(str(index[f]) for f in fs) or "-"))
    out.append("end\t%d\t%d" % (len(stacks), len(frames)))
    with open(path, "w") as fp:
        fp.write("\n".join(out) + "\n")
    return path


def growth_phases_snapshots():
    """Runs test/programs/growth_phases under the ledger; its three snapshots."""
    d = snapdir()
    run_under([os.path.join(PROGRAMS, "growth_phases")], d)
    snaps = sorted((f for f in os.listdir(d) if f.endswith(".snap")), key=lambda f: int(f.split(".")[2]))
    check(len(snaps) == 3, "expected three snapshots of growth_phases, got %s" % snaps)
    return [os.path.join(d, s) for s in snaps]
