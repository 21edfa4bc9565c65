/* report.js — the flame graph of memledger's HTML report (embedded into
 * each report by report_html.c). It reads the stacks from the page's
 * <script id="ml-data" type="application/json"> block and draws them as
 * positioned boxes: root at the top, each call below its caller, widths by
 * bytes. Hover shows a frame's figures; a click zooms to it; "Reset zoom"
 * (or a click on the root) goes back. Every string from the snapshot
 * reaches the page through textContent or a property, never as markup,
 * and nothing is fetched from anywhere. */
(function () {
  "use strict";

  var ROW = 18;          // px per call depth
  var MIN_WIDTH = 0.001; // boxes narrower than this share of the view are not drawn

  var data = JSON.parse(document.getElementById("ml-data").textContent);
  var graph = document.getElementById("flame-graph");
  var hover = document.getElementById("flame-hover");
  var reset = document.getElementById("flame-reset");

  function human(b) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"], v = Math.abs(b), u = 0;
    while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
    return (b < 0 ? "-" : "") + (u ? v.toFixed(1) : String(v)) + " " + units[u];
  }

  function hue(s) {
    var h = 0;
    for (var i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) % 360;
    return h % 60; // warm colours: red to yellow
  }

  // ---- the tree: one node per distinct frame under each caller ----
  function Node(key, frame, parent) {
    this.key = key; this.frame = frame; this.parent = parent;
    this.value = 0; this.count = 0; this.self = 0;
    this.depth = parent ? parent.depth + 1 : 0;
    this.children = new Map(); this.x = 0;
  }

  var root = new Node("root", null, null);
  var domainsUsed = new Set();
  data.stacks.forEach(function (s) { domainsUsed.add(s[2]); });
  var byDomain = domainsUsed.size > 1;
  var maxDepth = 0;

  function child(n, key, frame) {
    var c = n.children.get(key);
    if (!c) { c = new Node(key, frame, n); n.children.set(key, c); }
    return c;
  }

  data.stacks.forEach(function (s) {
    var bytes = s[0], count = s[1], n = root;
    n.value += bytes; n.count += count;
    if (byDomain) { n = child(n, "d" + s[2], { domain: data.domains[s[2]] }); n.value += bytes; n.count += count; }
    for (var i = 3; i < s.length; i++) {
      n = child(n, s[i], data.frames[s[i]]);
      n.value += bytes; n.count += count;
    }
    n.self += bytes;
    if (n.depth > maxDepth) maxDepth = n.depth;
  });
  if (data.other && data.other[0] > 0) {
    var o = child(root, "other", { other: data.other[2] });
    o.value = data.other[0]; o.count = data.other[1]; o.self = o.value;
    root.value += o.value; root.count += o.count;
    if (o.depth > maxDepth) maxDepth = o.depth;
  }

  // children left to right, largest first; x in bytes from the left edge
  (function place(n) {
    var kids = Array.from(n.children.values()).sort(function (a, b) { return b.value - a.value; });
    n.kids = kids;
    var x = n.x;
    kids.forEach(function (k) { k.x = x; x += k.value; place(k); });
  })(root);

  function label(n) {
    if (!n.frame) return data.what;
    if (n.frame.domain !== undefined) return n.frame.domain;
    if (n.frame.other !== undefined) return "(" + n.frame.other + " smaller stacks)";
    return n.frame[0];
  }

  function where(n) {
    var f = n.frame;
    if (!f || f.domain !== undefined || f.other !== undefined) return "";
    var at = f[1] ? f[1] + (f[2] ? ":" + f[2] : "") : "";
    var mod = f[3] ? "[" + f[3] + "]" : "";
    return [at, mod].filter(Boolean).join("  ");
  }

  var nodes = [];
  var zoomed = root;

  function box(n, left, width, extra) {
    var d = document.createElement("div");
    var kind = !n.frame ? "r" : n.frame.domain !== undefined || n.frame.other !== undefined ? "d" : n.frame[4];
    d.className = "fnode k-" + kind + (kind === "n" ? (n.frame[5] ? " user" : " runtime") : "") + (extra || "");
    d.style.left = (left * 100) + "%";
    d.style.width = (width * 100) + "%";
    d.style.top = (n.depth * ROW) + "px";
    if (kind === "n" || kind === "p") d.style.setProperty("--h", String(hue(n.frame[0])));
    d.textContent = label(n);
    d.title = label(n) + " — " + human(n.value);
    d.dataset.node = String(nodes.length);
    nodes.push(n);
    graph.appendChild(d);
  }

  function render() {
    nodes = [];
    graph.textContent = "";
    graph.style.height = ((maxDepth + 1) * ROW + 2) + "px";
    for (var a = zoomed.parent; a; a = a.parent) box(a, 0, 1, " ancestor");
    (function draw(n) {
      var width = zoomed.value ? n.value / zoomed.value : 0;
      if (width < MIN_WIDTH && n !== zoomed) return;
      box(n, zoomed.value ? (n.x - zoomed.x) / zoomed.value : 0, width);
      n.kids.forEach(draw);
    })(zoomed);
    reset.disabled = zoomed === root;
  }

  function describe(n) {
    var pct = root.value ? (100 * n.value / root.value).toFixed(1) : "0.0";
    var lines = [label(n)];
    var at = where(n);
    if (at) lines.push(at);
    lines.push(human(n.value) + " (" + n.value + " B, " + pct + "% of " + human(root.value) + ") in " +
               n.count + " allocation" + (n.count === 1 ? "" : "s") +
               (n.self ? "; " + human(n.self) + " allocated here" : ""));
    return lines.join("\n");
  }

  graph.addEventListener("mouseover", function (ev) {
    var i = ev.target.dataset && ev.target.dataset.node;
    if (i !== undefined) hover.textContent = describe(nodes[Number(i)]);
  });
  graph.addEventListener("click", function (ev) {
    var i = ev.target.dataset && ev.target.dataset.node;
    if (i === undefined) return;
    zoomed = nodes[Number(i)];
    render();
    hover.textContent = describe(zoomed);
  });
  reset.addEventListener("click", function () { zoomed = root; render(); });

  hover.textContent = describe(root);
  render();
  document.body.dataset.flameNodes = String(nodes.length);
})();
