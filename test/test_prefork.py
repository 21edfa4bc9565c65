"""Pre-fork servers under the ledger (issue 14): Debian's gunicorn with two
sync Flask workers (programs/flask_service.py) and uvicorn with two FastAPI
workers (programs/fastapi_service.py), each started by Debian's python3
with LD_PRELOAD=libmemledger.so and no MEMLEDGER_* variable, in a scratch
directory (the default MEMLEDGER_DIR).

For each server:
- `memledger snapshot --tree MASTER`, with the default signal (SIGUSR2,
  which gunicorn's master takes as "re-execute yourself"), prints one path
  per process of the tree under the ledger and leaves the number of
  processes as it was (no second master, no extra workers; the master's log
  says nothing of USR2);
- after warm-up, two rounds of `snapshot --tree` around a known load; each
  worker counts what it served in SERVICE_STATS_DIR/served.PID (a request
  reaches whichever worker accepts it);
- `memledger diff --by-process DIR --format json` reports each worker on
  its own: each LEAK line grows there by (requests that worker served) x
  LEAK_BYTES, within 10%; the snapshot headers say which worker is which
  (gunicorn's: `worker N PARENT`, forked under the ledger; every one has
  `start_time`); the workers are also taken together, and each worker's
  share of the merged rows is its own growth;
- the server stops on SIGTERM with status 0, leaves no temporary file, and
  no snapshot but the ones asked for."""
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
LEAKS = ("history", "closure", "kv", "cycle", "ctypes")
WORKERS = 2
WARM = 200       # each worker past its warm-up cache (50) with room to spare
MEASURED = 600   # between the two rounds of snapshots, in rounds of fresh connections

missing = [p for p in (PYTHON, GUNICORN, UVICORN) if not os.access(p, os.X_OK)]
check(not missing, "missing %s: run scripts/setup-deps test" % missing)
ENV = {k: v for k, v in os.environ.items() if not k.startswith("MEMLEDGER_")}
ENV["LD_PRELOAD"] = LIB
ENV["PYTHONDONTWRITEBYTECODE"] = "1"


def leak_lines(script):
    out = {}
    with open(script) as f:
        for i, text in enumerate(f, 1):
            for m in re.finditer(r"# LEAK:(\w+)", text):
                out[m.group(1)] = i
    check(sorted(out) == sorted(LEAKS), "%s: LEAK markers %s" % (script, sorted(out)))
    return out


def children(pid):
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return kids


def tree(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return sorted(out)


def served(stats_dir):
    out = {}
    for f in os.listdir(stats_dir):
        if f.startswith("served."):
            with open(os.path.join(stats_dir, f)) as fh:
                text = fh.read().strip()
            if text:
                out[int(f.split(".")[1])] = int(text)
    return out


def get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=30) as r:
        return json.loads(r.read())


def load(port, n, rounds):
    """n requests in `rounds` runs of scripts/loadgen, each opening new
    connections: uvicorn's workers take connections, not requests."""
    for _ in range(rounds):
        r = subprocess.run([sys.executable, LOADGEN, "--url", "http://127.0.0.1:%d/work" % port, "--requests",
                            str(n // rounds), "--concurrency", "4", "--json"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=300)
        out = json.loads(r.stdout) if r.returncode == 0 else {}
        check(out.get("done") == n // rounds and out.get("errors") == 0, "loadgen: %s %s" % (r.stdout, r.stderr))


def snapshot_tree(master, expect_pids):
    r = cli("snapshot", "--tree", master)
    paths = r.stdout.split()
    pids = sorted(int(os.path.basename(p).split(".")[1]) for p in paths)
    check(pids == sorted(expect_pids), "snapshot --tree %d printed %s; the tree under the ledger is %s"
          % (master, paths, sorted(expect_pids)))
    check(all(os.path.isfile(p) for p in paths), "snapshot --tree printed %s, not all files" % paths)
    return paths


def server(name, script, cmd_for, reuse_port_retry):
    d, logs, stats_dir = snapdir("mltest.prefork-%s." % name), snapdir("mltest.prefork-logs."), snapdir()
    env = dict(ENV, SERVICE_STATS_DIR=stats_dir)
    err_path = os.path.join(logs, name + ".log")
    for attempt in range(3):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        with open(err_path, "w") as err:
            proc = subprocess.Popen(cmd_for(port), cwd=d, env=env, stdin=subprocess.DEVNULL, stdout=err,
                                    stderr=subprocess.STDOUT)
        deadline, ready = time.monotonic() + 120, False
        while time.monotonic() < deadline and proc.poll() is None and not ready:
            try:
                get(port, "/stats")
                ready = True
            except OSError:
                time.sleep(0.2)
        if ready:
            break
        with open(err_path, errors="replace") as f:
            said = f.read()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if not reuse_port_retry or "address already in use" not in said.lower() or attempt == 2:
            fail("%s did not answer:\n%s" % (name, said[-3000:]))
    lines = leak_lines(script)
    try:
        # every worker up (uvicorn starts them one by one)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ws = [p for p in children(proc.pid) if "resource_tracker" not in open("/proc/%d/cmdline" % p).read()]
            if len(ws) == WORKERS:
                break
            time.sleep(0.2)
        workers = sorted(ws)
        check(len(workers) == WORKERS, "%s: workers %s" % (name, workers))
        load(port, WARM, 4)
        before = tree(proc.pid)
        a = snapshot_tree(proc.pid, before)
        time.sleep(3)  # gunicorn re-executes on USR2 asynchronously: give it the time to show
        after = tree(proc.pid)
        check(after == before, "%s: snapshot --tree of the master changed the processes: %s -> %s"
              % (name, before, after))
        s0 = served(stats_dir)
        load(port, MEASURED, 12)
        b = snapshot_tree(proc.pid, before)
        s1 = served(stats_dir)
        check(tree(proc.pid) == before, "%s: processes changed: %s -> %s" % (name, before, tree(proc.pid)))
        check(sorted(s1) == workers, "%s: served counts from %s, workers are %s" % (name, sorted(s1), workers))
        check(sum(s1.values()) == WARM + MEASURED, "%s: served %s in all, sent %d" % (name, s1, WARM + MEASURED))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            fail("%s did not stop on SIGTERM" % name)
    with open(err_path, errors="replace") as f:
        log = f.read()
    check(proc.returncode == 0, "%s exited %d:\n%s" % (name, proc.returncode, log[-3000:]))
    check(not re.search(r"usr2|re-?exec|memledger", log, re.I), "%s's log mentions USR2 or memledger:\n%s"
          % (name, log[-3000:]))
    left = [f for f in os.listdir(d) if f.endswith(".tmp") or f.startswith(".memledger.")]
    check(not left, "%s: temporary files left: %s" % (name, left))
    check(sorted(os.listdir(d)) == sorted(os.path.basename(p) for p in a + b),
          "%s: files in the snapshot directory: %s" % (name, sorted(os.listdir(d))))

    rep = json.loads(cli("diff", "--by-process", d, "--format", "json").stdout)
    by_pid = {p["pid"]: p for p in rep["processes"]}
    check(sorted(by_pid) == before, "%s: diff --by-process reports %s, the tree is %s" % (name, sorted(by_pid), before))
    figures = {}
    for w in workers:
        n = s1[w] - s0.get(w, 0)
        check(n >= 20, "%s: worker %d served %d requests between the snapshots (load did not spread)" % (name, w, n))
        p = by_pid[w]
        check(p["ppid"] == proc.pid and p["start_time"] is not None, "%s: worker %d header %s" % (name, w, p))
        truth = n * get_leak_bytes
        for kind, line in lines.items():
            stacks, grown = growth_at(p["diff"], script, line)
            check(stacks and within(grown, truth), "%s: worker %d (%d requests): LEAK:%s (line %d) grew %d, the "
                  "truth is %d" % (name, w, n, kind, line, grown, truth))
            figures[(w, kind)] = (n, grown, truth)
    groups = [g for g in rep["groups"] if sorted(g["pids"]) == workers]
    check(len(groups) == 1 and groups[0]["parent"] == proc.pid, "%s: workers taken together: %s"
          % (name, [(g["parent"], g["pids"]) for g in rep["groups"]]))
    g = groups[0]
    for row, shares in zip(g["diff"]["stacks"], g["by_process"]):
        total = sum(s["growth_bytes"] for s in shares)
        check(total == row["growth_bytes"], "%s: merged row grew %d, its shares add up to %d"
              % (name, row["growth_bytes"], total))
    return by_pid, figures, workers


get_leak_bytes = 16384


def flask_cmd(port):
    return [PYTHON, GUNICORN, "--workers", str(WORKERS), "--worker-class", "sync", "--bind", "127.0.0.1:%d" % port,
            "--pythonpath", PROGRAM_DIR, "--graceful-timeout", "20", "flask_service:app"]


def fastapi_cmd(port):
    return [PYTHON, UVICORN, "--host", "127.0.0.1", "--port", str(port), "--workers", str(WORKERS),
            "--app-dir", PROGRAM_DIR, "--no-access-log", "fastapi_service:app"]


for name, script, cmd in (("gunicorn", "flask_service.py", flask_cmd), ("uvicorn", "fastapi_service.py", fastapi_cmd)):
    by_pid, figures, workers = server(name, os.path.join(PROGRAM_DIR, script), cmd, True)
    if name == "gunicorn":  # forked under the ledger: the library numbers them
        idx = sorted(by_pid[w]["worker"] for w in workers)
        check(idx == [1, 2], "gunicorn workers' worker headers: %s" % idx)
    print("%s: %d processes, workers %s" % (name, len(by_pid), workers))
    for (w, kind), (n, grown, truth) in sorted(figures.items()):
        print("  worker %d (%3d requests) LEAK:%-8s %+9d B, truth %d (%+.2f%%)"
              % (w, n, kind, grown, truth, 100.0 * (grown - truth) / truth))
print("ok: gunicorn and uvicorn, two workers each: --tree left the processes as they were, every worker's "
      "leaks at their lines")
