"""A library opened with RTLD_DEEPBIND (issue 16), at default settings.
Such a library binds malloc and free straight to libc, past the preloaded
hooks; memledger points its slots at the hooks, which forward to the same
libc functions, before the program's first call into it.

argv[1] lazy: programs/mldeep.c built with lazy binding (partial RELRO),
   opened RTLD_LAZY; now: built -z now (full RELRO: the slots are read-only),
   opened RTLD_NOW. Between two snapshots the library keeps 10 x 3000 bytes
   (malloc), 5 x 700 (calloc) and 4 x 4096 (realloc of blocks the program
   allocated), and frees 8 x 5000 and, through a pointer to free, 3 x 700
   that the program allocated. ctor: the lazy library opened before the
   first snapshot, its functions taken from what its constructor handed
   the program, never looked up with dlsym: the dumper thread's scan before
   the snapshot must have redirected it. The diff must show exactly those three
   leaks at their lines in the library, and no growth at the program's line
   whose blocks the library freed or moved (no false leak); the snapshot
   names the library in a `malloc_bypass redirected` line; stderr is quiet.
argv[1] python: Debian's python3 (a non-PIE executable: its PLT entry
   stands for malloc's address) opens the lazy library with ctypes and
   RTLD_DEEPBIND (programs/py_deepbind.py): 10 x 3000 and 5 x 700 at the
   library's lines, and the script's 8 blocks of 5000 that it freed gone.
argv[1] own: programs/mldeep_own.c brings malloc and free of its own, so
   its allocations cannot be seen: stderr and the snapshot (`malloc_bypass
   unseen`) name it, diff's text says so in a note, and no stack of it
   shows up."""
import json
import os
import sys

from mltest import *

variant = sys.argv[1]
LIBSRC = os.path.join(SOURCE, "programs", "mldeep.c")
MAIN = os.path.join(SOURCE, "programs", "deepbind.c")
lib = os.path.join(PROGRAMS, "libmldeep_%s.so" % ("lazy" if variant in ("ctor", "python") else variant))
d = snapdir()
if variant == "python":
    SCRIPT = os.path.join(SOURCE, "programs", "py_deepbind.py")
    p = run_under([python_for("debian"), SCRIPT, lib], d)
else:
    p = run_under([os.path.join(PROGRAMS, "deepbind"), lib, variant], d)
base, head = snapshots_of(d)
H = read_snapshot(head)
bypass = H["headers"].get("malloc_bypass", [])
problems = {f[0]: int(f[1]) for f in H["headers"].get("problem", []) if int(f[1])}
check(not problems, "%s reports problems %s" % (head, problems))

if variant == "own":
    check(p.stdout.strip() == '{"own": 6}', "the program said %s" % p.stdout)
    warn = [l for l in p.stderr.splitlines() if l.startswith("memledger:")]
    check(len(warn) == 1 and lib in warn[0] and "not seen" in warn[0],
          "stderr does not name %s as unseen, once:\n%s" % (lib, p.stderr))
    check([f for f in bypass if f[0] == "unseen" and f[2] == lib],
          "the snapshot has no malloc_bypass unseen line for %s: %s" % (lib, bypass))
    check(not [f for f in bypass if f[0] == "redirected"], "a slot was redirected: %s" % bypass)
    r = diff_json(base, head)
    for s in r["stacks"]:
        check(not any(f["module"] == lib for f in s["frames"]), "a stack of %s was seen: %s" % (lib, s))
    text = cli("diff", base, head).stdout
    check("note: %s binds malloc past memledger" % lib in text, "diff's text has no note on %s:\n%s" % (lib, text))
    print("ok: %s (its own allocator) named as unseen on stderr, in the snapshot and in diff's note" % lib)
    sys.exit(0)

check(not [l for l in p.stderr.splitlines() if l.startswith("memledger:")], "memledger complained:\n" + p.stderr)
r = diff_json(base, head)
want = {"deep_malloc": (10 * 3000, 10), "deep_calloc": (5 * 7 * 100, 5), "deep_realloc": (4 * 4096, 4)}
if variant == "python":
    check(json.loads(p.stdout.strip().splitlines()[-1]) == {"kept": 15, "lib_kept": 15}, "the script said %s" % p.stdout)
    del want["deep_realloc"]
    block_line = marker_line(SCRIPT, "script_block", tag="MARK")
    for s in r["stacks"]:
        fr = script_frames(s, SCRIPT)  # the malloc domain: the line also keeps a Python int (the pointer)
        check(not (fr and fr[0]["line"] == block_line and s["domain"] == "malloc"),
              "the script's blocks that the library freed are still live: %s" % s)
else:
    check(p.stdout.strip() == '{"kept": 19}', "the program said %s" % p.stdout)
for fn, (nbytes, count) in want.items():
    rows = stacks_at(r, fn)
    check(len(rows) == 1, "%d stacks grew with %s innermost, expected 1" % (len(rows), fn))
    f0 = innermost(rows[0])
    line = marker_line(LIBSRC, fn)
    check(f0["module"] == lib and f0["file"] == LIBSRC and f0["line"] == line,
          "%s named %s:%s in %s, expected %s:%d in %s" % (fn, f0["file"], f0["line"], f0["module"], LIBSRC, line, lib))
    caller = "<module>" if variant == "python" else "main"
    check(any(f["function"] == caller for f in rows[0]["frames"]), "%s: %s is not on its stack" % (fn, caller))
    check((rows[0]["growth_bytes"], rows[0]["growth_count"]) == (nbytes, count),
          "%s grew %d bytes in %d blocks, expected %d in %d" % (fn, rows[0]["growth_bytes"], rows[0]["growth_count"],
                                                               nbytes, count))
# the blocks the program allocated and the library freed, moved or released
main_line = marker_line(MAIN, "main_block", tag="MARK")
for s in r["stacks"]:
    f0 = innermost(s)
    check(not (f0.get("file") == MAIN and f0.get("line") == main_line),
          "the program's blocks that the library freed are still live: %s" % s)
B = read_snapshot(base)
for s in B["stacks"] + H["stacks"]:
    if s["frames"] and s["frames"][0]["file"] == MAIN and s["frames"][0]["line"] == main_line:
        check(s["live_count"] == 0, "a block from %s:%d is live in a snapshot: %s" % (MAIN, main_line, s))
named = [f for f in bypass if f[0] == "redirected" and f[2] == lib]
check(named and int(named[0][1]) >= 1, "the snapshot does not name %s as redirected: %s" % (lib, bypass))
check(not [f for f in bypass if f[0] == "unseen"], "a slot was left unseen: %s" % bypass)
print("ok: %s opened with RTLD_DEEPBIND (%s): %s at its lines exact, the blocks it freed for the program are "
      "gone, %s slot(s) redirected" % (os.path.basename(lib), variant, ", ".join("%d B in %d" % v for v in want.values()),
                                        named[0][1]))
