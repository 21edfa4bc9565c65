"""mltest — what the integration tests share: where the build is, running a
program under the ledger, reading snapshots through the memledger CLI, and
finding the line a LEAK marker sits on. Assertions stay in the tests."""
import json
import os
import re
import subprocess
import sys
import tempfile

BUILD = os.environ.get("ML_BUILD") or os.path.join(os.path.dirname(__file__), "..", "build")
BUILD = os.path.abspath(BUILD)
LIB = os.path.join(BUILD, "libmemledger.so")
CLI = os.path.join(BUILD, "memledger")
PROGRAMS = os.path.join(BUILD, "test")
SOURCE = os.path.abspath(os.path.dirname(__file__))


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def snapdir(prefix="mltest."):
    return tempfile.mkdtemp(prefix=prefix)


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


def header(snap, key):
    """The fields of the first header line `key` of a snapshot, or None."""
    with open(snap) as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if fields[0] == key:
                return fields[1:]
            if fields[0] in ("module", "frame", "stack", "end"):
                return None
    return None


def within(measured, truth, tolerance=0.10):
    return abs(measured - truth) <= tolerance * truth


def innermost(stack):
    return stack["frames"][0] if stack["frames"] else {}


def stacks_at(report, function):
    """Stacks whose innermost frame is `function`."""
    return [s for s in report["stacks"] if innermost(s).get("function") == function]


def leftover_temp_files(snap_dir):
    return [f for f in os.listdir(snap_dir) if f.endswith(".tmp")]
