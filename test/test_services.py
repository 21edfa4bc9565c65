"""Real services under the ledger with default settings (issue 12,
acceptance line 1): a PyTorch loop (programs/torch_service.py), a Flask app
under gunicorn with one sync worker (programs/flask_service.py) and a
FastAPI app under uvicorn (programs/fastapi_service.py), each run by
Debian's python3 with LD_PRELOAD=libmemledger.so and no MEMLEDGER_*
variable at all, in a scratch directory (the default MEMLEDGER_DIR is the
current directory, so the snapshots must land there).

Each service plants five leaks per request (LEAK_BYTES of buffer each: a
list-kept tensor/array/bytearray, a closure capturing a buffer, a
per-request dict of key/value blocks never evicted, self-referencing dicts
with gc disabled, a ctypes libc malloc), fills a warm-up cache during its
first WARMUP requests and makes temporaries that are freed. After warm-up
the test takes snapshot A from outside (`memledger snapshot PID`), drives a
known number of requests, takes snapshot B, and reads `memledger diff A B
--format json`:
- each `# LEAK:<kind>` line of the program grows, summed over the stacks
  whose innermost frame in the program is that line (where a user looks:
  for a tensor the innermost frames are libtorch's), by requests x
  LEAK_BYTES, within 10% (the buffers' object headers and list slots come
  on top);
- with `--group-by line`, as a newcomer would read it, each LEAK line is a
  row of its own (the row's line is the innermost Python frame, not the
  extension's allocator inside it), with the same growth within 10%, and
  no row that grew by 64 KiB or more is a warm-up or churn line;
- no stack that grew by 64 KiB or more has the warm-up cache's or the
  churn's line in it;
- both snapshots say the stack store neither degraded nor overflowed (every
  `problem` count is 0, the `stacks` header's overflow count too), and
  carry the `store resident B nodes N stacks S` header;
- the service's stderr has no memledger complaint (a full store or table
  is said there), and no temporary snapshot file is left behind.
The gunicorn worker is the process snapshotted (the leak lives there; its
master only forks it); the app's /stats endpoint says the worker's pid and
how many requests it served, which must equal what loadgen sent.

The packages are Debian's (scripts/setup-deps test installs them): when
one is missing the test fails, saying which."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from mltest import *

PYTHON = "/usr/bin/python3"
GUNICORN = "/usr/bin/gunicorn"
UVICORN = "/usr/bin/uvicorn"
LOADGEN = os.path.join(SOURCE, "..", "scripts", "loadgen")
PROGRAM_DIR = os.path.join(SOURCE, "programs")
LEAK_KINDS = ("history", "closure", "kv", "cycle", "ctypes")
MARKS = ("warmcache", "churn")
BIG = 64 << 10          # "grew by 64 KiB or more": the warm-up and churn lines must not
WARM_REQUESTS = 100     # web services: past their WARMUP (50), so the cache is full
MEASURED_REQUESTS = 300  # between the snapshots
T0 = time.monotonic()

# ---- what the test needs: fail loudly, never skip ----
missing = [p for p in (PYTHON, GUNICORN, UVICORN) if not os.access(p, os.X_OK)]
check(not missing, "missing %s: run scripts/setup-deps test (Debian's python3, gunicorn, uvicorn)" % missing)
PACKAGES = {"torch": "python3-torch", "flask": "python3-flask", "fastapi": "python3-fastapi",
            "numpy": "python3-numpy", "gunicorn": "gunicorn", "uvicorn": "uvicorn"}
r = subprocess.run([PYTHON, "-c", "import importlib, sys\nfor m in sys.argv[1:]:\n"
                    "    try: importlib.import_module(m)\n    except Exception as e: print(m, repr(e))"]
                   + sorted(PACKAGES), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
check(r.returncode == 0 and not r.stdout.strip(), "%s cannot import what the services need (%s; scripts/setup-deps "
      "test installs them):\n%s" % (PYTHON, ", ".join(PACKAGES[l.split()[0]] for l in r.stdout.splitlines()
                                                       if l.split() and l.split()[0] in PACKAGES) or "?", r.stdout))

# the services' environment: the ledger preloaded, no MEMLEDGER_* setting at all
ENV = {k: v for k, v in os.environ.items() if not k.startswith("MEMLEDGER_")}
ENV["LD_PRELOAD"] = LIB
ENV["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ in the source tree


def markers(script):
    """{kind: line} of the LEAK markers, and of the MARK lines."""
    leaks, marks = {}, {}
    with open(script) as f:
        for i, text in enumerate(f, 1):
            for tag, out in (("LEAK", leaks), ("MARK", marks)):
                for m in re.finditer(r"# %s:(\w+)" % tag, text):
                    check(m.group(1) not in out, "%s: two %s:%s markers" % (script, tag, m.group(1)))
                    out[m.group(1)] = i
    check(sorted(leaks) == sorted(LEAK_KINDS), "%s: LEAK markers %s, wanted %s" % (script, sorted(leaks), LEAK_KINDS))
    check(sorted(marks) == sorted(MARKS), "%s: MARK markers %s, wanted %s" % (script, sorted(marks), MARKS))
    return leaks, marks


def snapshot(pid, snap_dir, seq):
    """`memledger snapshot PID`: the path it prints, which must be the
    seq-th snapshot of pid in snap_dir (the default MEMLEDGER_DIR is the
    service's working directory), and the seconds it took."""
    t = time.monotonic()
    path = cli("snapshot", pid).stdout.strip()
    took = time.monotonic() - t
    check(path == snap_path(snap_dir, pid, seq), "memledger snapshot printed %s, not %s"
          % (path, snap_path(snap_dir, pid, seq)))
    check(os.path.isfile(path), "memledger snapshot printed %s, which is not a file" % path)
    return path, took


def check_snapshot(name, path, pid):
    """The header checks every snapshot of a service must pass; its figures."""
    s = read_snapshot(path)
    check(s["version"] == 2, "%s: %s is format version %d" % (name, path, s["version"]))
    check(header(s, "pid") == [str(pid)], "%s: %s is of pid %s, not %d" % (name, path, header(s, "pid"), pid))
    store = header(s, "store")
    check(store is not None and store[0:6:2] == ["resident", "nodes", "stacks"] and
          all(x.isdigit() for x in store[1:6:2]),
          "%s: %s has no 'store resident B nodes N stacks S' header: %s" % (name, path, store))
    resident, nodes, stacks = int(store[1]), int(store[3]), int(store[5])
    check(resident > 0 and nodes > 0 and stacks > 0, "%s: store header %s" % (name, store))
    problems = {f[0]: int(f[1]) for f in s["headers"].get("problem", [])}
    for must in ("stack_store_degraded", "stack_store_overflowed"):
        check(must in problems, "%s: %s has no 'problem %s' line" % (name, path, must))
    bad = {k: v for k, v in problems.items() if v != 0}
    check(not bad, "%s: %s reports problems %s" % (name, path, bad))
    st = header(s, "stacks")
    check(st is not None and int(st[2]) == 0, "%s: %s stacks header says %s overflowed" % (name, path, st))
    check(header(s, "sample_bytes") == ["0"], "%s: not exact mode: sample_bytes %s" % (name, header(s, "sample_bytes")))
    check(header(s, "python_frames") and header(s, "python_frames")[0] == "on",
          "%s: python_frames %s" % (name, header(s, "python_frames")))
    return {"bytes": os.path.getsize(path), "resident": resident, "nodes": nodes, "stacks": stacks,
            "written": header(s, "written"), "rss": int(header(s, "rss")[0])}


def check_stderr(name, err_path):
    with open(err_path, errors="replace") as f:
        err = f.read()
    said = [l for l in err.splitlines() if "memledger" in l.lower()]
    check(not [l for l in said if re.search(r"full|overflow|degrad|not written|failed", l, re.I)],
          "%s: memledger complained on stderr:\n%s" % (name, "\n".join(said)))
    check(not said, "%s: memledger said something on stderr:\n%s" % (name, "\n".join(said)))


def where(stack, script):
    """A grown row in one line: its growth, domain, innermost frame of the
    program (or that it has none) and its innermost frame."""
    fr = script_frames(stack, script)
    inner = stack["frames"][0] if stack["frames"] else None
    return "%+d B %s at %s (innermost: %s)" % (
        stack["growth_bytes"], stack["domain"], "%s:%s" % (fr[0]["function"], fr[0]["line"]) if fr else "no frame of "
        + os.path.basename(script), "[no frames]" if inner is None else "%s %s:%s [%s]" % (
            inner["function"], inner["file"], inner["line"], inner["module"]))


def top_rows(report, script, n=8):
    """What grew most, for a failure message: where the bytes went instead."""
    return "\n".join("  " + where(s, script) for s in report["stacks"][:n])


def check_leaks(name, script, report, requests, leak_bytes):
    """Each LEAK line grew by requests x leak_bytes (10%); the MARK lines are
    in no stack that grew by BIG or more. Returns the figures."""
    leaks, marks = markers(script)
    truth = requests * leak_bytes
    figures = {}
    for kind, line in sorted(leaks.items(), key=lambda kv: kv[1]):
        stacks, grown = growth_at(report, script, line)
        check(stacks, "%s: LEAK:%s (%s:%d) is in no grown stack; what grew most:\n%s"
              % (name, kind, script, line, top_rows(report, script)))
        figures[kind] = (line, grown, len(stacks))
    for kind, (line, grown, n) in figures.items():
        check(within(grown, truth), "%s: LEAK:%s (line %d) grew %d bytes over %d stacks, the truth is %d "
              "(%d requests x %d); all leaks: %s; what grew most:\n%s"
              % (name, kind, line, grown, n, truth, requests, leak_bytes, {k: v[1] for k, v in figures.items()},
                 top_rows(report, script)))
    for mark, line in marks.items():
        for s in report["stacks"]:
            if s["growth_bytes"] >= BIG and any(f["line"] == line for f in script_frames(s, script)):
                fail("%s: MARK:%s (line %d) is in a stack that grew %d bytes: %s"
                     % (name, mark, line, s["growth_bytes"], where(s, script)))
        _, grown = growth_at(report, script, line)
        figures[mark] = (line, grown, None)
    return truth, figures


def check_line_rows(name, script, a, b, truth):
    """`memledger diff --group-by line`: each LEAK line is a row of its own
    that grew by the truth (10%), summed over its domains (a line's Python
    objects and its malloc'd buffers are rows of each domain); no MARK line
    is a row that grew by BIG or more."""
    rep = diff_json(a, b, extra=("--group-by", "line"))
    leaks, marks = markers(script)

    def rows_at(line):
        out = []
        for r in rep["stacks"]:
            u = r.get("user_frame")
            f = r["frames"][u] if u is not None and u < len(r["frames"]) else None
            if f and f["kind"] == "python" and f["file"] == script and f["line"] == line:
                out.append(r)
        return out
    for kind, line in leaks.items():
        rows = rows_at(line)
        grown = sum(r["growth_bytes"] for r in rows)
        check(rows and within(grown, truth), "%s --group-by line: LEAK:%s (line %d) rows grew %d bytes, the truth "
              "is %d; rows: %s" % (name, kind, line, grown, truth, [(r["growth_bytes"], r["domain"]) for r in rows]))
    for mark, line in marks.items():
        big = [r["growth_bytes"] for r in rows_at(line) if r["growth_bytes"] >= BIG]
        check(not big, "%s --group-by line: MARK:%s (line %d) grew %s" % (name, mark, line, big))


def diff(a, b):
    t = time.monotonic()
    report = diff_json(a, b)
    return report, time.monotonic() - t


def get_json(port, path, timeout=30):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
        return json.loads(r.read())


def wait_ready(name, proc, port, limit=120):
    """Polls /stats until the app answers (imports under the ledger take
    seconds): its answer, or None when the server exited first."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        try:
            return get_json(port, "/stats", timeout=5)
        except OSError:
            time.sleep(0.2)
    proc.kill()
    proc.wait()
    fail("%s did not answer /stats within %d s" % (name, limit))


def load(name, port, n):
    r = subprocess.run([sys.executable, LOADGEN, "--url", "http://127.0.0.1:%d/work" % port, "--requests", str(n),
                        "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    check(r.returncode == 0, "%s: loadgen exited %d: %s %s" % (name, r.returncode, r.stdout, r.stderr))
    out = json.loads(r.stdout)
    check(out["done"] == n and out["errors"] == 0, "%s: loadgen %s" % (name, out))
    return out


def finish(name, proc, snap_dir, err_path, snaps, stop_signal=signal.SIGTERM, timeout=60):
    """Stops the service (or waits for it to end) and checks what it left:
    exit status 0, nothing from memledger on stderr, no temporary file, and
    no snapshot but the ones asked for (none from a gunicorn master, none
    at exit: MEMLEDGER_AT_EXIT is off by default)."""
    if stop_signal is not None:
        proc.send_signal(stop_signal)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        fail("%s did not stop within %d s" % (name, timeout))
    check(proc.returncode == 0, "%s exited %d" % (name, proc.returncode))
    check_stderr(name, err_path)
    left = [f for f in os.listdir(snap_dir) if f.endswith(".tmp") or f.startswith(".memledger.")]
    check(not left, "%s: temporary files left in %s: %s" % (name, snap_dir, left))
    check(snapshots_of(snap_dir) == [p for p, _ in snaps], "%s: snapshots in %s: %s, asked for %s"
          % (name, snap_dir, snapshots_of(snap_dir), [p for p, _ in snaps]))


results = []


def report_service(name, truth, figures, snaps, diff_s, started_s, requests, t0):
    results.append((name, truth, figures, snaps, diff_s, started_s, requests, time.monotonic() - t0))


# ---- PyTorch: the loop stops at request 100 and 400 and waits for a line on stdin ----
def torch_service():
    name = "torch"
    script = os.path.join(PROGRAM_DIR, "torch_service.py")
    d, logs = snapdir("mltest.svc-torch."), snapdir("mltest.svc-logs.")
    err_path = os.path.join(logs, "torch.stderr")
    t = time.monotonic()
    with open(err_path, "w") as err:
        proc = subprocess.Popen([PYTHON, script, "100", "400"], cwd=d, env=ENV, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err, text=True)
    snaps = []
    try:
        for stop in (100, 400):
            line = proc.stdout.readline()
            check(line.strip() == "at %d" % stop, "torch: wanted 'at %d', read %r" % (stop, line))
            if stop == 100:
                started = time.monotonic() - t
            snaps.append(snapshot(proc.pid, d, len(snaps) + 1))
            proc.stdin.write("\n")
            proc.stdin.flush()
        info = json.loads(proc.stdout.readline())
    finally:
        if proc.poll() is None and proc.stdin:
            try:
                proc.stdin.close()
            except OSError:
                pass
    finish(name, proc, d, err_path, snaps, stop_signal=None)  # it ends after its JSON line
    requests = 400 - 100
    check(info["served"] == 400, "torch: served %s" % info)
    rep, diff_s = diff(snaps[0][0], snaps[1][0])
    truth, figures = check_leaks(name, script, rep, requests, info["leak_bytes"])
    check_line_rows(name, script, snaps[0][0], snaps[1][0], truth)
    report_service("torch %s" % info["torch"], truth, figures,
                   [(p, took, check_snapshot(name, p, proc.pid)) for p, took in snaps], diff_s, started, requests, t)


# ---- the web services: Flask under gunicorn (one sync worker), FastAPI under uvicorn ----
def web_service(name, script, cmd_for, use_fd):
    d, logs = snapdir("mltest.svc-%s." % name), snapdir("mltest.svc-logs.")
    err_path = os.path.join(logs, name + ".stderr")
    for attempt in range(3):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        fds = ()
        if use_fd:  # gunicorn takes the bound socket (fd://N): no other process can take the port meanwhile
            sock.listen(64)
            fds = (sock.fileno(),)
        else:
            # uvicorn 0.17's --fd wraps the socket as AF_UNIX, so asyncio leaves
            # TCP_NODELAY off and each response waits 40 ms for a delayed ACK:
            # uvicorn gets the port number instead (retried below if taken meanwhile)
            sock.close()
        t = time.monotonic()
        with open(err_path, "w") as err:
            proc = subprocess.Popen(cmd_for(port, fds), cwd=d, env=ENV, stdin=subprocess.DEVNULL,
                                    stdout=err, stderr=subprocess.STDOUT, pass_fds=fds)
        sock.close()
        stats = wait_ready(name, proc, port)
        if stats is not None:
            break
        with open(err_path, errors="replace") as f:
            said = f.read()
        # uvicorn's port was free a moment ago; another process may have taken it since
        if "address already in use" not in said.lower() or attempt == 2:
            fail("%s exited %d before answering:\n%s" % (name, proc.returncode, said[-3000:]))
    started = time.monotonic() - t
    snaps = []
    try:
        worker = stats["pid"]
        check(stats["served"] == 0, "%s: served %d before any load" % (name, stats["served"]))
        if use_fd:  # gunicorn: the app answers from the worker, a child of the master we started
            with open("/proc/%d/stat" % worker) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            check(worker != proc.pid and ppid == proc.pid, "%s: /stats answered from pid %d (parent %d), "
                  "not a worker of master %d" % (name, worker, ppid, proc.pid))
        load(name, port, WARM_REQUESTS)
        check(get_json(port, "/stats")["served"] == WARM_REQUESTS, "%s: warm-up not served" % name)
        snaps.append(snapshot(worker, d, 1))
        lg = load(name, port, MEASURED_REQUESTS)
        snaps.append(snapshot(worker, d, 2))
        stats = get_json(port, "/stats")
        check(stats["served"] == WARM_REQUESTS + MEASURED_REQUESTS, "%s: served %s" % (name, stats))
    finally:
        finish(name, proc, d, err_path, snaps)
    rep, diff_s = diff(snaps[0][0], snaps[1][0])
    truth, figures = check_leaks(name, script, rep, MEASURED_REQUESTS, stats["leak_bytes"])
    check_line_rows(name, script, snaps[0][0], snaps[1][0], truth)
    report_service("%s (%.0f req/s under the ledger)" % (name, lg["per_second"]), truth, figures,
                   [(p, took, check_snapshot(name, p, worker)) for p, took in snaps], diff_s, started,
                   MEASURED_REQUESTS, t)


def flask_cmd(port, fds):
    return [PYTHON, GUNICORN, "--workers", "1", "--worker-class", "sync", "--bind", "fd://%d" % fds[0],
            "--pythonpath", PROGRAM_DIR, "--graceful-timeout", "20", "flask_service:app"]


def fastapi_cmd(port, fds):
    return [PYTHON, UVICORN, "--host", "127.0.0.1", "--port", str(port), "--app-dir", PROGRAM_DIR,
            "--no-access-log", "fastapi_service:app"]


torch_service()
web_service("flask", os.path.join(PROGRAM_DIR, "flask_service.py"), flask_cmd, True)
web_service("fastapi", os.path.join(PROGRAM_DIR, "fastapi_service.py"), fastapi_cmd, False)

for name, truth, figures, snaps, diff_s, started_s, requests, wall in results:
    print("%s: %d requests between the snapshots, truth %d bytes a leak; ready after %.1f s, all done in %.1f s"
          % (name, requests, truth, started_s, wall))
    for kind, (line, grown, n) in sorted(figures.items(), key=lambda kv: kv[1][0]):
        if n is None:
            print("  MARK:%-9s line %3d  %+10d bytes (all its stacks)" % (kind, line, grown))
        else:
            print("  LEAK:%-9s line %3d  %+10d bytes over %d stack(s), %+.2f%%"
                  % (kind, line, grown, n, 100.0 * (grown - truth) / truth))
    for p, took, s in snaps:
        print("  %s: %d bytes on disk, taken in %.2f s; store %d bytes resident, %d nodes, %d stacks; "
              "written %s; rss %d" % (os.path.basename(p), s["bytes"], took, s["resident"], s["nodes"],
                                       s["stacks"], " ".join(s["written"] or []), s["rss"]))
    print("  diff: %.2f s" % diff_s)
print("ok: three services, every leak named at its line (total %.1f s)" % (time.monotonic() - T0))
