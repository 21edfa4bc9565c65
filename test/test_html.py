"""The HTML report, opened in a real browser (Debian's headless Chromium,
driven over the DevTools protocol by test/cdp.py, offline). For the growth
of growth_phases (snapshot 3 over 1): the page renders with no console
error, no exception and no blocked load; the leak's function, keep_copy,
is a box in the flame graph and the first row of the top-stacks table;
hovering a box shows its exact bytes; clicking zooms; the domain totals are
there. Screenshots are kept in <build>/test-artifacts/. A hand-made
snapshot whose function names are markup (<script>, an <img> with an
onerror handler, quotes) shows those names as text, in the flame graph
and in the table, and runs none of them."""
import json
import os
import re

import cdp
from mltest import *

ARTIFACTS = os.path.join(BUILD, "test-artifacts")
os.makedirs(ARTIFACTS, exist_ok=True)
LEAK_PER_STACK = 409600

snaps = growth_phases_snapshots()
out = snapdir("mltest.html.")
report = os.path.join(out, "growth.html")
cli("export", snaps[2], "--base", snaps[0], "--format", "html", "-o", report)
with open(report) as f:
    page_text = f.read()
check("http://" not in page_text.replace("http://www.w3.org", "") and "https://" not in page_text and
      "src=" not in page_text, "the report refers to something outside itself")

JS_NODES = "Array.from(document.querySelectorAll('#flame-graph .fnode'))"
with cdp.Browser() as b:
    page = b.open("file://" + report)
    check(page.errors == [], "the report logged errors: %s" % page.errors)
    check(page.eval("document.title") == "memledger: growth of growth_phases (pid %d)"
          % int(os.path.basename(snaps[2]).split(".")[1]), page.eval("document.title"))
    boxes = page.eval(JS_NODES + ".map(function (e) { return e.textContent; })")
    check(boxes.count("keep_copy") == 2, "keep_copy boxes in the flame graph: %s" % boxes)  # via get and post
    width = page.eval(JS_NODES + ".filter(function (e) { return e.textContent === 'keep_copy'; })"
                      ".map(function (e) { return e.getBoundingClientRect().width; })")
    total_width = page.eval("document.getElementById('flame-graph').getBoundingClientRect().width")
    check(all(w > 0.4 * total_width * 0.95 / 2 for w in width),  # each about 43% of all growth
          "keep_copy boxes are %s px of %s" % (width, total_width))
    first = page.eval("document.querySelector('#stacks tbody tr').textContent")
    check("keep_copy" in first and "+400.0 KiB" in first, "first table row: %r" % first)
    rows = page.eval("document.querySelectorAll('#stacks tbody tr').length")
    check(rows == 4, "table rows: %d" % rows)
    domains = page.eval("document.querySelector('#domains tbody').textContent")
    check("malloc" in domains and "+928.0 KiB" in domains, "domain totals: %r" % domains)
    page.screenshot(os.path.join(ARTIFACTS, "report-growth.png"))

    # hover a keep_copy box: its exact bytes appear
    sel = "#flame-graph .fnode[data-node='%s']" % page.eval(
        JS_NODES + ".filter(function (e) { return e.textContent === 'keep_copy'; })[0].dataset.node")
    box = page.eval("(function(){var r=document.querySelector(%s).getBoundingClientRect();"
                    "return [r.left+r.width/2, r.top+r.height/2];})()" % json.dumps(sel))
    b.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": box[0], "y": box[1]}, session=page.session)
    page.settle()
    hover = page.eval("document.getElementById('flame-hover').textContent")
    check(hover.startswith("keep_copy\n") and "(%d B, 43.1%% of 928.0 KiB)" % LEAK_PER_STACK in hover and
          "growth_phases.c:" in hover, "hover: %r" % hover)
    # click the 'serve' box: it fills the width, its callers stay above, dimmed
    serve = page.eval(JS_NODES + ".filter(function (e) { return e.textContent === 'serve'; })[0].dataset.node")
    page.click("#flame-graph .fnode[data-node='%s']" % serve)
    check(page.eval("document.getElementById('flame-reset').disabled") is False, "zoom did not happen")
    zoomed = page.eval(JS_NODES + ".filter(function (e) { return e.textContent === 'serve'; })"
                       ".map(function (e) { return e.style.width; })")
    check(zoomed == ["100%"], "the zoomed box is %s wide" % zoomed)
    check(page.eval("document.querySelectorAll('#flame-graph .fnode.ancestor').length") == 5,
          "root, _start, libc start x2, main above the zoomed box")
    page.screenshot(os.path.join(ARTIFACTS, "report-growth-zoomed.png"))
    page.click("#flame-reset")
    check(page.eval("document.getElementById('flame-reset').disabled") is True, "reset did not unzoom")
    check(page.errors == [], "errors after interaction: %s" % page.errors)

    # live memory without --base
    live = os.path.join(out, "live.html")
    cli("export", snaps[2], "--format", "html", "-o", live)
    lp = b.open("file://" + live)
    check(lp.errors == [], "live report errors: %s" % lp.errors)
    check(lp.eval("document.querySelector('h1').textContent") == "Live memory of growth_phases", "live heading")
    check("keep_copy" in lp.eval("document.getElementById('flame-graph').textContent"), "live flame graph")

    # hostile names: shown as text, never run
    evil_fn = "<script>window.__pwned = 1</script>"
    evil_img = "\"><img src=x onerror=\"window.__pwned=2\">"
    evil_file = "</script><script>window.__pwned=3</script>.py"
    mods = [("cd" * 20, "/srv/app/lib<b>bold<i>.so")]
    base = write_snapshot(os.path.join(out, "evil1.snap"), modules=mods, seq=1, stacks=[
        ("malloc", 100, 1, [("native", 0, 0x100, evil_fn, "/src/a&b.c", 3), ("native", 0, 0x200, "main", None, None)])])
    head = write_snapshot(os.path.join(out, "evil2.snap"), modules=mods, seq=2, time=1700000060.0, stacks=[
        ("malloc", 100 + 5000, 2, [("native", 0, 0x100, evil_fn, "/src/a&b.c", 3),
                                   ("native", 0, 0x200, "main", None, None)]),
        ("python", 7000, 7, [("python", evil_img, evil_file, 12), ("python", "handler", "/srv/x.py", 1)])])
    evil = os.path.join(out, "evil.html")
    cli("export", head, "--base", base, "--format", "html", "-o", evil)
    ep = b.open("file://" + evil)
    check(ep.errors == [], "hostile names caused errors: %s" % ep.errors)
    check(ep.eval("typeof window.__pwned") == "undefined", "a name in the snapshot ran as script")
    check(ep.dialogs == [], "a dialog opened")
    check(ep.eval("document.scripts.length") == 2, "scripts on the page: %d" % ep.eval("document.scripts.length"))
    check(ep.eval("document.images.length") == 0 and
          ep.eval("Array.from(document.querySelectorAll('b')).filter(function (e) { return e.textContent === 'bold'; })"
                  ".length") == 0, "markup from the snapshot became elements")
    flame = ep.eval(JS_NODES + ".map(function (e) { return e.textContent; })")
    check(evil_fn in flame and evil_img in flame, "the flame graph does not show the names as text: %s" % flame)
    table = ep.eval("document.getElementById('stacks').textContent")
    check(evil_fn in table and evil_img in table and evil_file in table and "lib<b>bold<i>.so" in table
          and "/src/a&b.c:3" in table, "the table does not show the names as text: %r" % table)
    ep.screenshot(os.path.join(ARTIFACTS, "report-hostile-names.png"))

shots = sorted(f for f in os.listdir(ARTIFACTS) if f.startswith("report-"))
check(all(os.path.getsize(os.path.join(ARTIFACTS, s)) > 10000 for s in shots), "screenshots: %s" % shots)
print("ok: report renders without errors; keep_copy in the flame graph and the table; hover, zoom; "
      "hostile names are text; screenshots in %s" % ARTIFACTS)
