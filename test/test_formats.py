"""`memledger diff --format text|json|markdown` on growth_phases's three
snapshots and on hand-made ones:
  text      aligned columns (every row's figures start in the same
            columns), human sizes with exact bytes beside them; ANSI
            colour on a terminal only, and never with NO_COLOR set;
  json      the command contract: an object with `stacks`, each with
            growth_bytes, growth_count, domain and frames (innermost first;
            kind, function, file, line or null, module);
  markdown  a heading, a summary line and a table; names from the snapshot
            escaped so that markup and table syntax stay text."""
import json
import os
import pty
import re
import subprocess

from mltest import *

snaps = growth_phases_snapshots()
d = os.path.dirname(snaps[0])

# ---- text ----
text = cli("diff", *snaps, "--color", "never").stdout
check("\033[" not in text, "colour in --color never output")
rows = [l for l in text.splitlines() if re.match(r"\s+\d+\s+[+-][\d.]+ (B|KiB|MiB)\s", l)]
check(len(rows) == 4, "expected 4 rows:\n" + text)
header = next(l for l in text.splitlines() if l.strip().startswith("#") and "growth" in l)
for col in ("growth", "bytes", "allocs", "live"):
    end = header.index(col) + len(col)  # numeric columns are right-aligned under their heading
    for r in rows:
        check(r[end - 1] != " " and (end == len(r) or r[end] == " "), "column %s is not aligned:\n%s\n%s" % (col, header, r))
check(re.search(r"^\s+1\s+\+400\.0 KiB\s+\+409600\s+\+100\s+496\.0 KiB\s+malloc\s+only grows$", text, re.M), text)
check(re.search(r"^\s+3\s+\+64\.0 KiB\s+\+65536\s+\+8\s+256\.0 KiB\s+malloc\s+grew in 1 of 2 intervals$", text, re.M),
      text)
check("4 stacks grew by +928.0 KiB (+950272 B, +216 allocations); 2 only grow" in text, text)
check(cli("diff", *snaps).stdout == text, "colour when the output is a pipe")


def on_tty(*args, env=None):
    """Runs memledger with its standard output on a pseudo-terminal."""
    master, slave = pty.openpty()
    p = subprocess.Popen([CLI] + list(args), stdout=slave, stderr=subprocess.PIPE,
                         env=dict(os.environ, **(env or {})))
    os.close(slave)
    chunks = []
    while True:
        try:
            c = os.read(master, 65536)
        except OSError:
            break
        if not c:
            break
        chunks.append(c)
    p.wait(timeout=60)
    os.close(master)
    check(p.returncode == 0, "memledger %s on a tty exited %d" % (args, p.returncode))
    return b"".join(chunks).decode()


tty = on_tty("diff", *snaps, env={"NO_COLOR": ""})
check("\033[31m" in tty and "only grows\033[0m" in tty, "no colour on a terminal: %r" % tty[:300])
check(re.sub(r"\033\[[0-9;]*m", "", tty).replace("\r\n", "\n") == text, "colour changed the text")
check("\033[" not in on_tty("diff", *snaps, env={"NO_COLOR": "1"}), "colour despite NO_COLOR=1")
check("\033[" in cli("diff", *snaps, "--color", "always").stdout, "--color always")

# ---- json: the contract ----
r = diff_json(*snaps)
check(isinstance(r, dict) and isinstance(r["stacks"], list) and r["stacks"], "not an object with stacks")
for s in r["stacks"]:
    for k, t in (("growth_bytes", int), ("growth_count", int), ("domain", str), ("frames", list)):
        check(isinstance(s.get(k), t), "stack field %s: %r" % (k, s.get(k)))
    for f in s["frames"]:
        check(f["kind"] in ("native", "python") and set(f) >= {"kind", "function", "file", "line", "module"},
              "frame fields: %s" % f)
        check(f["line"] is None or (isinstance(f["line"], int) and f["line"] > 0), "line: %r" % f["line"])
    check(s["frames"][0]["function"] in ("keep_copy", "__strdup", "strdup"), "frames are not innermost first")
underlying = [f for s in r["stacks"] for f in s["frames"] if f["function"] == "_start"]
check(underlying and all(f["line"] is None for f in underlying), "_start has no line: null expected")

# ---- markdown ----
md = cli("diff", *snaps, "--format", "markdown").stdout
lines = md.splitlines()
check(lines[0] == "### memledger: memory growth", lines[0])
check(lines[2].startswith("**4 stacks grew by +928.0 KiB** (+216 allocations); **2 only grow**"), lines[2])
table = [l for l in lines if l.startswith("|")]
check(table[0] == "| # | growth | allocations | live | domain | trend | where |" and
      table[1].startswith("| ---: |") and len(table) == 6, "\n".join(table))
check(table[2].startswith("| 1 | +400.0 KiB | +100 | 496.0 KiB | malloc | **only grows** | **keep\\_copy** "
                          "(growth\\_phases.c:"), table[2])
check(all(l.count(" | ") == 6 for l in table[2:]), "a row has the wrong number of cells")

# names that are markup or table syntax stay text
evil = "<script>alert(1)</script>|x*y_[z]`"
h = write_snapshot(os.path.join(d, "md2.snap"), seq=2, stacks=[
    ("malloc", 5000, 5, [("native", None, 0x10, evil, "/src/a|b.c", 4)])])
b = write_snapshot(os.path.join(d, "md1.snap"), seq=1, stacks=[])
md = cli("diff", b, h, "--format", "markdown").stdout
row = [l for l in md.splitlines() if l.startswith("| 1 |")][0]
check("&lt;script&gt;alert(1)&lt;/script&gt;\\|x\\*y\\_\\[z\\]\\`" in row and "a\\|b.c:4" in row, row)
check("<script>" not in md and row.count(" | ") == 5, row)
# when nothing grew
md = cli("diff", h, h, "--format", "markdown").stdout
check("**No stack grew**" in md and "|" not in md, md)
print("ok: text aligned, coloured only on a tty without NO_COLOR; json contract; markdown escaped")
