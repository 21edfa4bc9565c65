"""scripts/ci-memory-check end to end, on a small HTTP service with a
planted leak (test/programs/http_service.c: 1000 B kept per request in
remember_request). Two rounds of 200 requests through curl: the leak grew
by exactly 400000 B and only grows.
  --warmup-url, --fail-above 300KiB    exit 1; report.md says why, and is
                                       appended to $GITHUB_STEP_SUMMARY
  --warmup-log, --fail-above 1MiB      exit 0
  --warmup-file, three rounds          exit 0, four snapshots
  a service that dies at once          exit 2, with its log
Every run leaves snapshots/, report.md, report.json, growth.html and
service.log under --out, and no service behind."""
import json
import os
import socket
import subprocess

from mltest import *

SCRIPT = os.path.join(SOURCE, "..", "scripts", "ci-memory-check")
SERVICE = os.path.join(PROGRAMS, "http_service")
LEAK = 2 * 200 * 1000


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run_check(args, env=None):
    e = dict(os.environ)
    e.pop("GITHUB_STEP_SUMMARY", None)  # only where a test sets it
    e.update(env or {})
    return subprocess.run([SCRIPT, "--memledger", CLI] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=e, timeout=300)


def no_service_left(port):
    p = subprocess.run(["pgrep", "-f", "http_service %d" % port], stdout=subprocess.PIPE, text=True)
    check(p.stdout.strip() == "", "the service is still running: %s" % p.stdout)


def outputs(out, nsnaps):
    snaps = sorted(os.listdir(os.path.join(out, "snapshots")))
    check(len(snaps) == nsnaps, "snapshots: %s" % snaps)
    for f in ("report.md", "report.json", "growth.html", "service.log"):
        check(os.path.getsize(os.path.join(out, f)) > 0, "%s is missing or empty" % f)
    with open(os.path.join(out, "report.json")) as f:
        r = json.load(f)
    leak = stacks_at(r, "remember_request")
    check(len(leak) == 1 and leak[0]["growth_bytes"] == LEAK * (nsnaps - 1) // 2 and leak[0]["only_grows"],
          "the leak in report.json: %s" % leak)
    with open(os.path.join(out, "report.md")) as f:
        return f.read()


# URL warm-up, a threshold crossed
port = free_port()
out = snapdir("mltest.ci.")
summary = os.path.join(out, "summary.md")
with open(summary, "w") as f:
    f.write("# earlier steps\n")
load = "curl -fsS 'http://127.0.0.1:%d/work?n=200' >/dev/null" % port
p = run_check(["--out", out, "--warmup-url", "http://127.0.0.1:%d/health" % port, "--load", load,
               "--fail-above", "300KiB", "--", SERVICE, str(port)], env={"GITHUB_STEP_SUMMARY": summary})
check(p.returncode == 1, "exit %d, expected 1 (threshold crossed)\n%s\n%s" % (p.returncode, p.stdout, p.stderr))
md = outputs(out, 3)
check(md.startswith("### memledger: ❌ a stack grew by 390.6 KiB, more than the 307200 B (300.0 KiB) limit"), md[:200])
check("**remember\\_request**" in md and "**only grows**" in md, md)
with open(summary) as f:
    check(f.read() == "# earlier steps\n" + md + "\n", "the job summary was not appended to")
check("FAILED: a memory threshold was crossed" in p.stderr and "remember_request" in p.stdout, p.stderr)
no_service_left(port)

# log-line warm-up, within the limit
port = free_port()
out = snapdir("mltest.ci.")
load = "curl -fsS 'http://127.0.0.1:%d/work?n=200' >/dev/null" % port
p = run_check(["--out", out, "--warmup-log", "^ready on port", "--load", load, "--fail-above", "1MiB",
               "--fail-total-above", "1000%", "--", SERVICE, str(port)])
check(p.returncode == 0, "exit %d, expected 0\n%s" % (p.returncode, p.stderr))
check(outputs(out, 3).startswith("### memledger: ✅ within limits"), "report.md does not say it passed")
no_service_left(port)

# file warm-up, three rounds: four snapshots
port = free_port()
out = snapdir("mltest.ci.")
ready = os.path.join(out, "ready")
load = "curl -fsS \"http://127.0.0.1:%d/work?n=200\" >/dev/null && test -n \"$MEMLEDGER_CI_PID\"" % port
p = run_check(["--out", out, "--warmup-file", ready, "--load", load, "--rounds", "3", "--",
               SERVICE, str(port), ready])
check(p.returncode == 0, "exit %d\n%s" % (p.returncode, p.stderr))
outputs(out, 4)
no_service_left(port)

# set-up failures: exit 2
out = snapdir("mltest.ci.")
p = run_check(["--out", out, "--warmup-url", "http://127.0.0.1:9/health", "--warmup-timeout", "20", "--",
               "sh", "-c", "echo cannot load the model; exit 3"])
check(p.returncode == 2 and "exited before it warmed up" in p.stderr and "cannot load the model" in p.stderr,
      "%d %s" % (p.returncode, p.stderr))
port = free_port()
p = run_check(["--out", out, "--warmup-url", "http://127.0.0.1:%d/health" % port, "--load", "false", "--",
               SERVICE, str(port)])
check(p.returncode == 2 and "the load command failed in round 1" in p.stderr, "%d %s" % (p.returncode, p.stderr))
no_service_left(port)
for args in ([], ["--rounds", "0", "--", "true"], ["--bogus", "--", "true"]):
    check(run_check(args).returncode == 2, "%s did not exit 2" % args)
print("ok: ci-memory-check: leak %d B only grows; exit 1 over the limit, 0 within, 2 when it cannot run" % LEAK)
