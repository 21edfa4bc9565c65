"""Where snapshots are written, and what they hold:
- mode 0600, created with O_EXCL|O_NOFOLLOW under a random temporary name:
  symlinks planted in a shared (sticky, world-writable) directory at the
  temporary name an attacker can guess and at the final name are never
  followed — the files they point to are untouched — and the snapshot is
  written all the same, as a regular file of the process's own (under the
  next free number: an entry at a final name is never replaced);
- environment variable values never appear in a snapshot;
- MEMLEDGER_REDACT_CMDLINE=1 leaves the command line out;
- in a set-user-ID process (AT_SECURE) the library does nothing: not loaded
  through LD_PRELOAD, and when the program loads it itself, no tracking, no
  handler, no thread, no file."""
import json
import os
import shutil
import stat
import subprocess
import tempfile

from mltest import *

SIGNALS = os.path.join(PROGRAMS, "signals")  # 'block' mode: asks for snapshots 1 and 2

# ---- planted symlinks ----
shared = snapdir("mltest.shared.")
os.chmod(shared, 0o1777)
victim_dir = snapdir("mltest.victim.")
env = dict(os.environ, LD_PRELOAD="", ML_LIB=LIB, MEMLEDGER_DIR=shared)
# the pid is known only once it runs: it waits on stdin (as a shell, not
# yet tracked) while the links are planted, then execs the program
prog = subprocess.Popen(["/bin/sh", "-c", 'read go; LD_PRELOAD="$ML_LIB" exec "$0" block', SIGNALS], env=env,
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
pid = prog.pid
victims = []
for seq in (1, 2):
    # the old fixed temporary name, the new one's prefix, and the final name
    for name in (".memledger.%d.%d.snap.tmp" % (pid, seq), "memledger.%d.%d.snap" % (pid, seq)):
        v = os.path.join(victim_dir, "victim" + name)
        with open(v, "w") as f:
            f.write("precious\n")
        os.symlink(v, os.path.join(shared, name))
        victims.append(v)
out, err = prog.communicate("go\n", timeout=120)
check(prog.returncode == 0, "exit %d: %s" % (prog.returncode, err))
for v in victims:
    with open(v) as f:
        check(f.read() == "precious\n", "%s was written through a planted symlink" % v)
# a planted entry at a final name is never replaced either: the snapshots
# take the numbers after it (3 and 4), and the links stay as planted
for seq in (1, 2):
    link = os.path.join(shared, "memledger.%d.%d.snap" % (pid, seq))
    check(os.path.islink(link), "%s is no longer the planted link" % link)
for seq in (3, 4):
    final = os.path.join(shared, "memledger.%d.%d.snap" % (pid, seq))
    st = os.lstat(final)
    check(stat.S_ISREG(st.st_mode) and st.st_mode & 0o777 == 0o600 and st.st_uid == os.geteuid(),
          "%s: mode %o, uid %d; expected a regular file 0600 of our own" % (final, st.st_mode, st.st_uid))
    read_snapshot(final)
left = sorted(f for f in os.listdir(shared) if f.endswith(".tmp"))
check(left == sorted(".memledger.%d.%d.snap.tmp" % (pid, s) for s in (1, 2)),
      "temporary files other than the planted links: %s" % left)
print("ok: planted symlinks at the temporary and final names never followed; snapshots 0600, regular, ours")

# ---- no environment values; the command line only when allowed ----
SECRET = "hunter2-%s" % os.urandom(8).hex()
for redact in ("0", "1"):
    d = snapdir()
    p = run_under([os.path.join(PROGRAMS, "leak_sites"), "--token=" + SECRET + "-argv"], d,
                  extra_env={"API_TOKEN": SECRET, "MEMLEDGER_REDACT_CMDLINE": redact})
    for s in snapshots_of(d):
        with open_snapshot(s) as f:
            data = f.read().encode()
        check(SECRET.encode() + b"-argv" not in data if redact == "1" else SECRET.encode() + b"-argv" in data,
              "%s: argv secret %s (REDACT_CMDLINE=%s)" % (s, "present" if redact == "1" else "missing", redact))
        check(SECRET.encode() not in data.replace(SECRET.encode() + b"-argv", b""),
              "%s: the environment value was written" % s)
        cmd = header(read_snapshot(s), "cmdline")
        check(cmd == ["[redacted]"] if redact == "1" else cmd[-1] == "--token=" + SECRET + "-argv",
              "cmdline header %s with REDACT_CMDLINE=%s" % (cmd, redact))
print("ok: no environment value in any snapshot; MEMLEDGER_REDACT_CMDLINE=1 writes [redacted]")

# ---- set-user-ID ----
if os.geteuid() != 0 or not shutil.which("setpriv"):
    print("note: not root (or no setpriv): the set-user-ID case needs root to make a setuid binary; not run")
else:
    box = snapdir("mltest.setuid.")
    os.chmod(box, 0o755)
    probe, lib = os.path.join(box, "setuid_probe"), os.path.join(box, "libmemledger.so")
    shutil.copy(os.path.join(PROGRAMS, "setuid_probe"), probe)
    shutil.copy(LIB, lib)
    os.chmod(lib, 0o755)
    os.chown(probe, 0, 0)
    os.chmod(probe, 0o4755)  # set-user-ID root
    snaps = snapdir()
    os.chmod(snaps, 0o1777)
    # LD_PRELOAD is set by env, after setpriv: setpriv changes credentials
    # thread by thread, which a process with memledger's thread in it
    # cannot survive (glibc aborts when the threads disagree)
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "env", "LD_PRELOAD=" + lib,
                        "MEMLEDGER_DIR=" + snaps, "MEMLEDGER_AT_EXIT=1", probe, lib],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60, cwd=box)
    check(p.returncode == 0, "setuid probe exit %d: %s" % (p.returncode, p.stderr))
    r = json.loads(p.stdout.strip().splitlines()[-1])
    want = {"secure": 1, "euid": 0, "uid": 65534, "preloaded": 0, "active": 0, "snapshot_err": 95,
            "usr2_default": 1, "thread": 0}
    check(r == want, "setuid: %s, expected %s" % (r, want))
    check(p.stderr == "" and os.listdir(snaps) == [], "setuid: wrote %r / %s" % (p.stderr, os.listdir(snaps)))
    print("ok: set-user-ID (AT_SECURE): not preloaded; loaded by the program it tracks nothing, takes no "
          "signal, starts no thread, writes nothing")
