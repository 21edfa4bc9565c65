"""A leak of zero-byte blocks (issue 16): programs/zero_leak keeps 1,000
malloc(0) and 1,000 calloc(0, 16) blocks per round, two rounds, between
three snapshots, and frees as many malloc(48) blocks. Such a leak holds 0
bytes as asked for, yet each block costs a chunk: `top` must show both
stacks with their exact live counts (0 bytes, 1,000 and 2,000 blocks), and
`diff` must show them with their counts, ranked by count where bytes tie,
in JSON and text; with all three snapshots both grow in every interval
("only grows"). The churn line shows nowhere."""
import json
import os

from mltest import *

SRC = os.path.join(SOURCE, "programs", "zero_leak.c")
d = snapdir()
p = run_under([os.path.join(PROGRAMS, "zero_leak")], d)
out = json.loads(p.stdout.strip().splitlines()[-1])
check(out == {"kept": 4000, "distinct": 4000}, "the program kept %s" % out)
check(not p.stderr.strip(), "stderr:\n" + p.stderr)
s1, s2, s3 = snapshots_of(d)
lines = {site: marker_line(SRC, site) for site in ("malloc0", "calloc0")}
functions = {"malloc0": "leak_malloc0", "calloc0": "leak_calloc0"}
churn = marker_line(SRC, "churn", tag="MARK")


def at_site(stacks, site):
    found = []
    for s in stacks:
        f0 = innermost(s)
        if f0.get("function") == functions[site]:
            check(f0["file"] == SRC and f0["line"] == lines[site],
                  "%s named %s:%s, expected %s:%d" % (site, f0["file"], f0["line"], SRC, lines[site]))
            found.append(s)
    return found


def no_churn(stacks, what):
    for s in stacks:
        check(innermost(s).get("function") != "churn", "%s shows the freed churn line %d: %s" % (what, churn, s))


# top: each zero-byte stack, live 0 bytes in exactly 1,000 (then 2,000) blocks
for snap, blocks in ((s2, 1000), (s3, 2000)):
    top = top_json(snap)
    for site in lines:
        rows = at_site(top["stacks"], site)
        check(len(rows) == 1, "top %s: %d stacks at %s, expected 1" % (snap, len(rows), site))
        check((rows[0]["live_bytes"], rows[0]["live_count"]) == (0, blocks),
              "top %s: %s holds %d bytes in %d blocks, expected 0 in %d" % (
                  snap, site, rows[0]["live_bytes"], rows[0]["live_count"], blocks))
    no_churn(top["stacks"], "top")
    # ranked: stacks holding bytes first, then more blocks before fewer
    keys = [(s["live_bytes"], s["live_count"]) for s in top["stacks"]]
    check(keys == sorted(keys, reverse=True), "top is not ranked by bytes, then count: %s" % keys)
text = cli("top", s2, "-n", "0").stdout
for site in lines:
    want = "%s at %s:%d" % (functions[site], SRC, lines[site])
    check(want in text, "top's text does not show %s:\n%s" % (want, text))
check("0 B in 1000 allocations" in text, "top's text does not show the count:\n%s" % text)
print("ok: top shows malloc(0) and calloc(0, 16) stacks at lines %d and %d: 0 B in 1000, then 2000 blocks"
      % (lines["malloc0"], lines["calloc0"]))

# diff: growth 0 bytes, exactly 1,000 blocks per stack
r = diff_json(s1, s2)
for site in lines:
    rows = at_site(r["stacks"], site)
    check(len(rows) == 1, "diff: %d rows at %s, expected 1" % (len(rows), site))
    check((rows[0]["growth_bytes"], rows[0]["growth_count"]) == (0, 1000),
          "diff: %s grew %d bytes in %d blocks, expected 0 in 1000" % (
              site, rows[0]["growth_bytes"], rows[0]["growth_count"]))
no_churn(r["stacks"], "diff")
keys = [(s["growth_bytes"], s["growth_count"]) for s in r["stacks"]]
check(keys == sorted(keys, reverse=True), "diff is not ranked by bytes, then count: %s" % keys)
text = cli("diff", s1, s2).stdout
for site in lines:
    want = "%s at %s:%d" % (functions[site], SRC, lines[site])
    check(want in text, "diff's text does not show %s:\n%s" % (want, text))
check("+1000" in text, "diff's text does not show the count:\n%s" % text)

# three snapshots: each zero-byte stack grew (in blocks) in every interval
r = diff_json(s1, s2, s3)
for site in lines:
    rows = at_site(r["stacks"], site)
    check(len(rows) == 1 and rows[0]["growth_count"] == 2000 and rows[0]["only_grows"],
          "diff of three: %s is %s, expected +2000 blocks, only grows" % (site, rows))
text = cli("diff", s1, s2, s3).stdout
check(text.count("only grows") >= 2, "diff's text of three does not mark both stacks 'only grows':\n%s" % text)
print("ok: diff shows both stacks with +1000 blocks (0 B), and 'only grows' over three snapshots")
