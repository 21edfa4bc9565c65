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


def marker_line(source, marker):
    """The 1-based line of the source file that holds '/* LEAK:<marker> */'
    (or '# LEAK:<marker>' in Python sources)."""
    with open(source) as f:
        for i, line in enumerate(f, 1):
            if re.search(r"LEAK:%s\b" % re.escape(marker), line):
                return i
    fail("no LEAK:%s marker in %s" % (marker, source))


def innermost(stack):
    return stack["frames"][0] if stack["frames"] else {}


def stacks_at(report, function):
    """Stacks whose innermost frame is `function`."""
    return [s for s in report["stacks"] if innermost(s).get("function") == function]


def leftover_temp_files(snap_dir):
    return [f for f in os.listdir(snap_dir) if f.endswith(".tmp")]
