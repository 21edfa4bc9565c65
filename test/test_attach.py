"""memledger attach (issue 14).

`test_attach.py service`: a Flask service (programs/flask_service.py) under
Debian's gunicorn, one sync worker, started WITHOUT the ledger. After some
requests, `memledger attach WORKER` loads the library into the running
worker; two snapshots around N more requests then name the leak lines with
the exact size of each object: the numpy array's data (LEAK:history, 16384
bytes each, malloc) and the bytearray's buffer (LEAK:cycle, 16385 bytes
each: bytearray keeps a NUL after its 16384 bytes; python), N of each. What
was allocated before the attach is not counted as growth. The worker keeps
serving (every request answered, its count right), `memledger detach`
puts it back (it keeps serving, and `memledger snapshot` refuses it), and
gunicorn stops on SIGTERM with status 0.

`test_attach.py failures`: each refusal is said clearly and does no harm:
- attaching twice (the second says it is attached already; the process
  still answers);
- attaching to a process started under the ledger (`memledger run`);
- attaching to a program that is not Python (test/programs/demo_service, a
  C service): native tracking only, said so, and its planted leak is found
  (audit_log, 512 bytes per request); detached again, it runs on;
- attaching without ptrace permission (the command run as uid 65534 on a
  process of root's): the message says why and what would work, and the
  process has no libmemledger.so mapped afterwards;
- an unknown pid, and bad usage."""
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
LOADGEN = os.path.join(SOURCE, "..", "scripts", "loadgen")
PROGRAM_DIR = os.path.join(SOURCE, "programs")
SCRIPT = os.path.join(PROGRAM_DIR, "flask_service.py")
PLAIN = {k: v for k, v in os.environ.items() if not k.startswith("MEMLEDGER_") and k != "LD_PRELOAD"}
PLAIN["PYTHONDONTWRITEBYTECODE"] = "1"

mode = sys.argv[1] if len(sys.argv) > 1 else "service"
check(os.access(GUNICORN, os.X_OK), "missing %s: run scripts/setup-deps test" % GUNICORN)


def get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=30) as r:
        return json.loads(r.read())


def load(port, n):
    r = subprocess.run([sys.executable, LOADGEN, "--url", "http://127.0.0.1:%d/work" % port, "--requests", str(n),
                        "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    out = json.loads(r.stdout) if r.returncode == 0 else {}
    check(out.get("done") == n and out.get("errors") == 0, "loadgen: %s %s" % (r.stdout, r.stderr))


def maps_have_ledger(pid):
    with open("/proc/%d/maps" % pid) as f:
        return "libmemledger" in f.read()


def start_gunicorn(d):
    """gunicorn + Flask without the ledger; (proc, port, worker pid, log path)."""
    log = os.path.join(snapdir("mltest.attach-logs."), "gunicorn.log")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    with open(log, "w") as err:
        proc = subprocess.Popen([PYTHON, GUNICORN, "--workers", "1", "--worker-class", "sync", "--bind",
                                 "fd://%d" % sock.fileno(), "--pythonpath", PROGRAM_DIR, "--graceful-timeout", "20",
                                 "flask_service:app"], cwd=d, env=PLAIN, stdin=subprocess.DEVNULL, stdout=err,
                                stderr=subprocess.STDOUT, pass_fds=(sock.fileno(),))
    sock.close()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        check(proc.poll() is None, "gunicorn exited: %s" % open(log).read()[-2000:])
        try:
            stats = get(port, "/stats")
            break
        except OSError:
            time.sleep(0.2)
    else:
        fail("gunicorn did not answer")
    worker = stats["pid"]
    check(worker != proc.pid and not maps_have_ledger(worker), "the worker %d runs without the ledger" % worker)
    return proc, port, worker, log


def stop(proc, log):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        fail("gunicorn did not stop on SIGTERM")
    check(proc.returncode == 0, "gunicorn exited %d:\n%s" % (proc.returncode, open(log).read()[-3000:]))


def lines():
    out = {}
    with open(SCRIPT) as f:
        for i, text in enumerate(f, 1):
            m = re.search(r"# LEAK:(\w+)", text)
            if m:
                out[m.group(1)] = i
    return out


def service():
    d = snapdir("mltest.attach.")
    proc, port, worker, log = start_gunicorn(d)
    try:
        load(port, 60)  # before the attach: unknown to the ledger
        t = time.monotonic()
        r = cli("attach", worker, "--dir", d)
        took = time.monotonic() - t
        check("attached to process %d" % worker in r.stdout and "Python 3." in r.stdout and "PyMem hooks" in r.stdout
              and "frames on" in r.stdout, "attach said: %r %r" % (r.stdout, r.stderr))
        check(r.stderr == "", "attach wrote on stderr: %r" % r.stderr)
        check(maps_have_ledger(worker), "libmemledger.so is not in the worker after attach")
        load(port, 40)
        a = cli("snapshot", worker).stdout.strip()
        check(a == snap_path(d, worker, 1), "first snapshot %r" % a)
        n = 200
        load(port, n)
        b = cli("snapshot", worker).stdout.strip()
        check(b == snap_path(d, worker, 2), "second snapshot %r" % b)
        stats = get(port, "/stats")
        check(stats["served"] == 300, "the worker served %s, sent 300" % stats)
        rep = diff_json(a, b)
        at = lines()
        found = {}
        for kind, size, domain in (("history", 16384, "malloc"), ("cycle", 16385, "python")):
            stacks, _ = growth_at(rep, SCRIPT, at[kind])
            exact = [s for s in stacks if s["domain"] == domain and s["growth_count"] == n
                     and s["growth_bytes"] == n * size]
            check(exact, "LEAK:%s (line %d): no %s stack grew by exactly %d x %d bytes; its stacks: %s"
                  % (kind, at[kind], domain, n, size, [(s["domain"], s["growth_count"], s["growth_bytes"])
                                                       for s in stacks]))
            found[kind] = exact[0]["growth_bytes"]
        s = read_snapshot(a)
        check(header(s, "tracking") and header(s, "tracking")[0] == "attach", "tracking header %s"
              % header(s, "tracking"))
        # what the 60 requests before the attach left is unknown: the first
        # snapshot holds the 40 after it, not 100
        live = [x for x in top_json(a)["stacks"] if any(f["kind"] == "python" and f["file"] == SCRIPT and
                                                        f["line"] == at["history"] for f in x["frames"])
                and x["domain"] == "malloc" and x["live_bytes"] % 16384 == 0 and x["live_bytes"]]
        check(live and max(x["live_count"] for x in live) == 40, "before the attach: live at LEAK:history %s"
              % [(x["live_count"], x["live_bytes"]) for x in live])
        r = cli("detach", worker)
        check("detached from process %d" % worker in r.stdout, "detach said %r %r" % (r.stdout, r.stderr))
        load(port, 50)
        check(get(port, "/stats")["served"] == 350, "not serving after detach")
        p = cli("snapshot", worker, expect_rc=2)
        check("detached" in p.stderr, "snapshot after detach: %r" % p.stderr)
        r = cli("attach", worker, expect_rc=2)
        check("cannot attach to the same process twice" in r.stderr, "attach after detach: %r" % r.stderr)
    finally:
        stop(proc, log)
    with open(log) as f:
        text = f.read()
    check("memledger" not in text.lower(), "memledger wrote into gunicorn's log: %s" % text[-2000:])
    print("ok: attached in %.2f s; LEAK:history +%d B (%d x 16384), LEAK:cycle +%d B (%d x 16385); served on; "
          "detached; gunicorn exited 0" % (took, found["history"], n, found["cycle"], n))


def failures():
    d = snapdir("mltest.attach-fail.")
    proc, port, worker, log = start_gunicorn(d)
    try:
        cli("attach", worker, "--dir", d)
        r = cli("attach", worker, expect_rc=2)
        check("already attached to process %d" % worker in r.stderr, "attach twice: %r" % r.stderr)
        load(port, 20)
        check(get(port, "/stats")["served"] == 20, "not serving after the second attach")
        print("ok: attaching twice: %s" % r.stderr.strip())
    finally:
        stop(proc, log)

    # a process started under the ledger
    under = subprocess.Popen([CLI, "run", "--dir", d, "--", PYTHON, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(1.0)
        r = cli("attach", under.pid, expect_rc=2)
        check("already runs under memledger" in r.stderr, "under the ledger: %r" % r.stderr)
        check(under.poll() is None, "the process under the ledger died")
        print("ok: under the ledger: %s" % r.stderr.strip())
    finally:
        under.kill()
        under.wait()

    # a program that is not Python: native tracking
    svc = subprocess.Popen([os.path.join(PROGRAMS, "demo_service")], stdout=subprocess.PIPE, env=PLAIN, text=True)
    try:
        check(svc.stdout.readline().startswith("ready"), "demo_service did not start")
        r = cli("attach", svc.pid, "--dir", d)
        check("not a Python process: native allocations only" in r.stdout, "non-Python: %r" % r.stdout)
        a = cli("snapshot", svc.pid).stdout.strip()
        time.sleep(1.0)
        b = cli("snapshot", svc.pid).stdout.strip()
        rep = diff_json(a, b)
        audit = stacks_at(rep, "audit_log")
        check(len(audit) == 1 and audit[0]["growth_count"] > 0 and
              audit[0]["growth_bytes"] == 512 * audit[0]["growth_count"], "demo_service's audit_log: %s"
              % [(s["growth_count"], s["growth_bytes"]) for s in audit])
        cli("detach", svc.pid)
        time.sleep(0.3)
        check(svc.poll() is None, "demo_service died after detach")
        print("ok: not Python: native tracking, audit_log +%d x 512 B; detached" % audit[0]["growth_count"])
    finally:
        svc.send_signal(signal.SIGTERM)
        svc.wait(timeout=30)

    # no ptrace permission: memledger as uid 65534, the process root's
    target = subprocess.Popen([PYTHON, "-c", "import time; time.sleep(60)"], env=PLAIN)
    try:
        time.sleep(0.5)
        p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", CLI, "attach",
                            str(target.pid), "--dir", "/tmp"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=60)
        check(p.returncode == 1 and "no permission to trace process %d" % target.pid in p.stderr and
              "CAP_SYS_PTRACE" in p.stderr and "uid 0" in p.stderr, "without permission: rc %d %r"
              % (p.returncode, p.stderr))
        check(target.poll() is None and not maps_have_ledger(target.pid), "the process was harmed")
        print("ok: no permission: %s" % p.stderr.strip())
    finally:
        target.kill()
        target.wait()

    r = cli("attach", 999999999, expect_rc=2)
    cli("attach", expect_rc=2)
    cli("attach", "notapid", expect_rc=2)
    cli("attach", "1", "--sample-bytes", "lots", expect_rc=2)
    cli("detach", expect_rc=2)
    print("ok: bad usage exits 2")


service() if mode == "service" else failures()
