"""Faults the library meets and survives, each with the program running on
to its own end:
- the stack store full (MEMLEDGER_STACKS=1024, 4096 distinct stacks, all of
  them holding memory, so none can be collected): the stacks beyond it are
  kept smaller (their innermost native frames, below a mark saying frames
  were left out), counted in `problem stack_store_degraded`, the program is
  told once, `top` and `diff` say so, and live bytes stay exact;
- a tight address space (RLIMIT_AS) and the largest MEMLEDGER_STACKS: the
  store takes address space only as stacks come (no reservation for its
  ceiling), so the program still gets its 512 MiB, tracking runs, and
  both snapshots are written;
- the address table unable to grow mid-run (RLIMIT_AS): allocations it
  cannot record are counted in `problem address_table_full`, and what it
  recorded plus what it dropped is exactly what the program allocated;
- MEMLEDGER_DIR missing, read-only, or full (the file size limit, with
  SIGXFSZ at its default action; and a full tmpfs where one can be mounted):
  one line on stderr, exit status 0, no file of any kind left behind."""
import json
import os
import re
import resource
import shutil
import subprocess

from mltest import *

PROG = os.path.join(PROGRAMS, "faults")


def run(mode, d, env=None, preexec=None, wrap=()):
    e = dict(os.environ, LD_PRELOAD=LIB, MEMLEDGER_DIR=d)
    e.update(env or {})
    p = subprocess.run(list(wrap) + [PROG, mode], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=300, preexec_fn=preexec)
    return p, (json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 and p.stdout.strip() else None)


# ---- the stack store full ----
d = snapdir()
p, out = run("stacks", d, {"MEMLEDGER_STACKS": "1024"})
check(out and out["allocations"] == 8192, "stacks: %s\n%s" % (p.returncode, p.stderr))
first, second = snapshots_of(d)
s1, s2 = read_snapshot(first), read_snapshot(second)
used, cap, overflowed = (int(x) for x in header(s2, "stacks"))
check(cap == 1024 and used <= 1024 and overflowed == 0, "stacks header: %d used of %d, %d overflowed" % (used, cap, overflowed))
degraded = int(header(s2, "problem", "stack_store_degraded")[0])
store = header(s2, "store")
store = dict(zip(store[0::2], store[1::2]))
check(int(store["degraded"]) == degraded > 0, "store line %s, problem line %d" % (store, degraded))
# a stack that found no id adds no nodes: only the stacks kept take room
check(int(store["nodes"]) <= 16 * int(store["stacks"]), "store line %s: nodes of stacks never made" % store)
r = diff_json(first, second)
named = stacks_at(r, "many_stacks_leaf")
kept_smaller = [s for s in named if s["frames"][-1]["function"].startswith("[native frames left out")]
check(kept_smaller and all(len(s["frames"]) == 9 for s in kept_smaller),
      "stacks kept smaller should be their 8 innermost frames below the mark: %s"
      % [[f["function"] for f in s["frames"]] for s in kept_smaller[:2]])
grown = sum(s["growth_bytes"] for s in named)
count = sum(s["growth_count"] for s in named)
check((grown, count) == (8192 * 100, 8192),
      "many_stacks_leaf's stacks grew %d bytes in %d, the program allocated %d in %d" % (grown, count, 8192 * 100, 8192))
check(not [s for s in r["stacks"] if not s["frames"]], "no stack should be without frames")
told = [l for l in p.stderr.splitlines() if "the stack store is full" in l]
check(len(told) == 1 and "MEMLEDGER_STACKS=1024" in told[0],
      "the program should be told once that the store is full:\n" + p.stderr)
text = cli("diff", first, second).stdout
check("the stack store was full (1024 stacks): %d new stacks were kept with their Python frames and innermost "
      "native frames only" % degraded in text, "diff does not say the store was full:\n" + text)
print("ok: store of 1024 full; 8192 x 100 B at %d stacks, %d of them kept smaller (%d smaller stacks made)"
      % (len(named), len(kept_smaller), degraded))

# ---- a tight address space, the largest ceiling ----
d = snapdir()
limit = 800 << 20  # room for the program and its 512 MiB, not for reserving a ceiling's worth of tables


def low_as():
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


# the largest ceiling config.h allows: gigabytes of address space, were it reserved
with open(os.path.join(SOURCE, "..", "src", "common", "config.h")) as f:
    max_stacks = re.search(r"#define ML_MAX_STACKS (\w+)", f.read()).group(1)
max_stacks = str(eval(max_stacks.replace("u", "")))
p, out = run("quiet_big", d, {"MEMLEDGER_STACKS": max_stacks}, preexec=low_as)
check(p.returncode == 0 and out and out["big"] == 1,
      "under RLIMIT_AS the program did not get its 512 MiB: exit %d\n%s%s" % (p.returncode, p.stdout, p.stderr))
check("memledger:" not in p.stderr, "unexpected message: %r" % p.stderr)
snaps = snapshots_of(d)
check(len(snaps) == 2, "expected the two snapshots the program asked for, got %s" % os.listdir(d))
used, cap, _ = (int(x) for x in header(read_snapshot(snaps[1]), "stacks"))
check(cap == int(max_stacks) and used > 0, "stacks header: %d used of %d" % (used, cap))
print("ok: MEMLEDGER_STACKS=%s under a %d MiB address space: tracking on, the program got its 512 MiB"
      % (max_stacks, limit >> 20))

# ---- the address table cannot grow ----
d = snapdir()
p, out = run("nomem", d)
check(out and out["allocations"] == 200000, "nomem: exit %d\n%s" % (p.returncode, p.stderr))
first, second = snapshots_of(d)
dropped = (int(header(read_snapshot(second), "problem", "address_table_full")[0]) -
           int(header(read_snapshot(first), "problem", "address_table_full")[0]))
r = diff_json(first, second)
leaf = stacks_at(r, "nomem_leaf")
tracked = sum(s["growth_count"] for s in leaf)
check(dropped > 0, "the address table never ran out of room: the test proves nothing")
check(tracked + dropped == 200000,
      "%d allocations tracked + %d dropped != the 200000 the program made" % (tracked, dropped))
check(sum(s["growth_bytes"] for s in leaf) == 24 * tracked, "tracked bytes are not 24 per allocation")
print("ok: address table starved: %d tracked + %d counted as address_table_full = 200000" % (tracked, dropped))


# ---- snapshot directories that cannot be written ----
def expect_refused(d, p, out, why, where=None):
    where = where or d
    check(p.returncode == 0 and out and out["done"] == 1,
          "%s: the program did not run on: exit %d\n%s%s" % (why, p.returncode, p.stdout, p.stderr))
    lines = p.stderr.splitlines()
    want = "memledger: cannot write snapshot 1 into %s (MEMLEDGER_DIR): %s; the program runs on" % (where, why)
    check(lines == [want], "expected one line %r, got %r" % (want, p.stderr))


AT_EXIT = {"MEMLEDGER_AT_EXIT": "1"}  # three snapshots asked for, the last one from exit()

base = snapdir()
missing = os.path.join(base, "missing")
p, out = run("quiet", missing, AT_EXIT)
expect_refused(missing, p, out, "No such file or directory")
check(os.listdir(base) == [], "a missing directory was created or written: %s" % os.listdir(base))
print("ok: missing MEMLEDGER_DIR -> one line, exit 0, nothing created")

ro = snapdir()
os.chmod(ro, 0o555)
wrap = ()
if os.geteuid() == 0:
    # root writes anywhere: drop the capabilities that let it, so the
    # directory's mode decides as it does for everyone else
    check(shutil.which("setpriv"), "setpriv (util-linux) is needed to run as root without DAC override")
    wrap = ("setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--")
p, out = run("quiet", ro, AT_EXIT, wrap=wrap)
expect_refused(ro, p, out, "Permission denied")
check(os.listdir(ro) == [], "files in a read-only directory: %s" % os.listdir(ro))
print("ok: read-only MEMLEDGER_DIR -> one line, exit 0, nothing written")

full = snapdir()


def small_files():
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, resource.RLIM_INFINITY))


p, out = run("quiet", full, AT_EXIT, preexec=small_files)
expect_refused(full, p, out, "File too large")
check(os.listdir(full) == [], "partial files left in a full directory: %s" % os.listdir(full))
print("ok: full MEMLEDGER_DIR (RLIMIT_FSIZE, SIGXFSZ at its default) -> one line, exit 0, no partial file")

# a really full file system: a 16 KiB tmpfs in a private mount namespace
tiny = snapdir()
probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=16k tmpfs \"$0\"", tiny],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
if probe.returncode != 0:
    print("note: no tmpfs can be mounted here (%s); ENOSPC is covered by RLIMIT_FSIZE above only"
          % probe.stderr.strip())
else:
    # the preload starts inside: unshare(CLONE_NEWUSER) refuses a process
    # that has threads, and memledger's own thread would be one. The file
    # system is filled first, then what is left in it is listed from inside.
    script = ('mount -t tmpfs -o size=16k tmpfs "$0" && (head -c 1M /dev/zero >"$0/fill" 2>/dev/null; true) && '
              '(LD_PRELOAD="$ML_LIB" "$@"); rc=$?; echo "left: $(ls -A "$0" | grep -vx fill)"; exit $rc')
    e = dict(os.environ, LD_PRELOAD="", ML_LIB=LIB, MEMLEDGER_DIR=tiny, **AT_EXIT)
    p = subprocess.run(["unshare", "-rm", "sh", "-c", script, tiny, PROG, "quiet"], env=e, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=300)
    out_lines = p.stdout.strip().splitlines()
    check(len(out_lines) == 2 and out_lines[1].rstrip() == "left:", "files left in the full file system: %r" % p.stdout)
    expect_refused(tiny, subprocess.CompletedProcess(p.args, p.returncode, out_lines[0], p.stderr),
                   json.loads(out_lines[0]), "No space left on device")
    print("ok: full MEMLEDGER_DIR (a full 16 KiB tmpfs) -> one line, exit 0, no partial file")
