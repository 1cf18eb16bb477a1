// Attribution graph viewer (r1interp report site). Plain JS, no dependencies, works from file://.
//
// Reads the compact graph embedded in the page (<script type="application/json" id="graph-data">, see
// r1interp/site/graphdata.py): nodes are arrays named by `fields`, links a flat list of
// (source, target, weight) triples sorted by |weight|, strongest first, so "keep the strongest x%" is a prefix of the list.
// Layout: one horizontal band per layer (embeddings at the bottom, logits on top), one column per
// token position; nodes sharing a (layer, position) cell are spread left to right, most influential
// first (circuit-tracer's `influence` is cumulative: lower means more important).
(function () {
  "use strict";
  var holder = document.getElementById("graph-data");
  var canvas = document.getElementById("canvas");
  if (!holder || !canvas) return;
  var G = JSON.parse(holder.textContent);
  var SVGNS = "http://www.w3.org/2000/svg";
  var PER_ROW = 10, SPACING = 13, MIN_COL = 24, SUB_ROW = 18, BAND_PAD = 34, LEFT = 56, TOP = 14, BOTTOM = 96, MAX_STRETCH = 4;

  var F = {};
  G.fields.forEach(function (name, i) { F[name] = i; });
  var nodes = G.nodes.map(function (a, i) {
    return { i: i, id: a[F.id], kind: a[F.kind], layer: a[F.layer], pos: a[F.pos], feature: a[F.feature],
             act: a[F.activation], infl: a[F.influence], label: a[F.label], prob: a[F.prob],
             target: a[F.target], page: a[F.page], ins: [], outs: [] };
  });
  var links = [];
  for (var j = 0; j + 2 < G.links.length; j += 3) {
    links.push({ k: links.length, s: nodes[G.links[j]], t: nodes[G.links[j + 1]], w: G.links[j + 2] });
  }
  links.forEach(function (e) { e.s.outs.push(e); e.t.ins.push(e); });
  var maxW = links.length ? Math.abs(links[0].w) : 1;

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  // as tokens.short() on the Python side: whitespace visible, R1's long chat tokens abbreviated
  var SHORT = { "begin▁of▁sentence": "bos", "end▁of▁sentence": "eos" };
  function shown(tok) {
    var m = /^<｜(.+)｜>$/.exec(tok);
    if (m) return "‹" + (SHORT[m[1]] || m[1]) + "›";
    return String(tok).replace(/\n/g, "↵").replace(/\t/g, "⇥");
  }
  function num(x) {
    if (x === null || x === undefined) return "–";
    var a = Math.abs(x);
    if (a === 0) return "0";
    if (a < 1e-3) return x.toExponential(2);
    return x.toPrecision(3).replace(/\.?0+$/, "");
  }
  function layerName(layer) {
    if (layer < 0) return "emb";
    return nodes.some(function (n) { return n.kind === "l" && n.layer === layer; }) ? "logits" : "L" + layer;
  }
  function tokenAt(pos) { return pos >= 0 && pos < G.tokens.length ? G.tokens[pos] : ""; }
  function name(n) {
    if (n.kind === "f") return "L" + n.layer + " F" + n.feature;
    if (n.kind === "e") return "error L" + n.layer + " @" + n.pos;
    if (n.kind === "m") return "emb “" + shown(tokenAt(n.pos)) + "” @" + n.pos;
    return n.label || "logit @" + n.pos;
  }
  function featureHref(n) {
    return n.kind === "f" && n.page ? "../features/" + G.model + "-L" + n.layer + "-F" + n.feature + ".html" : null;
  }

  // ------------------------------------------------------------------------------------------ layout
  var nPos = Math.max(G.tokens.length, 1 + Math.max.apply(null, nodes.map(function (n) { return n.pos; })));
  // every layer from the embeddings to the logits gets a band, empty ones too: a layer with no surviving
  // node is information (the pruning found nothing there), not something to hide
  var lo = Math.min.apply(null, nodes.map(function (n) { return n.layer; }));
  var hi = Math.max.apply(null, nodes.map(function (n) { return n.layer; }));
  var layers = [];
  for (var li = lo; li <= hi; li++) layers.push(li);
  var cells = {};
  nodes.forEach(function (n) { (cells[n.layer + ":" + n.pos] = cells[n.layer + ":" + n.pos] || []).push(n); });
  var order = { f: 0, e: 1, m: 2, l: 3 };
  Object.keys(cells).forEach(function (k) {
    cells[k].sort(function (a, b) {
      return (order[a.kind] - order[b.kind]) || ((a.infl === null ? 9 : a.infl) - (b.infl === null ? 9 : b.infl));
    });
  });
  var colW = [], colX = [], natural = 0;
  for (var p = 0; p < nPos; p++) {
    var widest = 1;
    layers.forEach(function (l) { var c = cells[l + ":" + p]; if (c) widest = Math.max(widest, Math.min(c.length, PER_ROW)); });
    colW.push(Math.max(MIN_COL, widest * SPACING + 10));
    natural += colW[p];
  }
  // short prompts are stretched to the canvas width (up to MAX_STRETCH x), long ones scroll sideways
  var stretch = Math.min(MAX_STRETCH, Math.max(1, (canvas.clientWidth - LEFT - 24) / natural));
  var x = LEFT;
  for (p = 0; p < nPos; p++) { colW[p] *= stretch; colX.push(x); x += colW[p]; }
  var width = x + 20;
  var bandH = {}, bandY = {}, y = TOP;
  layers.slice().reverse().forEach(function (l) {  // top band = highest layer
    var rows = 1;
    for (var p = 0; p < nPos; p++) { var c = cells[l + ":" + p]; if (c) rows = Math.max(rows, Math.ceil(c.length / PER_ROW)); }
    bandH[l] = rows * SUB_ROW + BAND_PAD;
    bandY[l] = y;
    y += bandH[l];
  });
  var height = y + BOTTOM;
  Object.keys(cells).forEach(function (k) {
    var c = cells[k], n0 = c[0], perRow = Math.min(c.length, PER_ROW);
    c.forEach(function (n, j) {
      var row = Math.floor(j / PER_ROW), inRow = j % PER_ROW;
      var count = row < Math.floor(c.length / PER_ROW) ? perRow : (c.length % PER_ROW || perRow);
      n.x = colX[n0.pos] + colW[n0.pos] / 2 + (inRow - (count - 1) / 2) * SPACING;
      n.y = bandY[n0.layer] + BAND_PAD / 2 + row * SUB_ROW + SUB_ROW / 2;
    });
  });

  // ------------------------------------------------------------------------------------------ drawing
  function make(tag, attrs, parent) {
    var e = document.createElementNS(SVGNS, tag);
    for (var a in attrs) e.setAttribute(a, attrs[a]);
    if (parent) parent.appendChild(e);
    return e;
  }
  var svg = make("svg", { id: "graph-svg", width: width, height: height, viewBox: "0 0 " + width + " " + height });
  var gBands = make("g", { "class": "bands" }, svg);
  layers.forEach(function (l, idx) {
    make("rect", { x: 0, y: bandY[l], width: width, height: bandH[l], "class": idx % 2 ? "band odd" : "band" }, gBands);
  });
  var baseY = bandY[layers[0]] + bandH[layers[0]];
  for (var q = 0; q < nPos; q++) {
    var tx = colX[q] + colW[q] / 2;
    var tt = make("text", { x: tx, y: baseY + 10, "class": "tok-label", transform: "rotate(-55 " + tx + " " + (baseY + 10) + ")",
                            "text-anchor": "end" }, svg);
    tt.textContent = shown(tokenAt(q)).slice(0, 14);
    make("title", {}, tt).textContent = q + ": " + shown(tokenAt(q));
  }
  var gEdges = make("g", { id: "edges" }, svg);
  links.forEach(function (e) {
    e.el = make("line", { x1: e.s.x, y1: e.s.y, x2: e.t.x, y2: e.t.y, "class": e.w >= 0 ? "e-pos" : "e-neg",
                          "stroke-width": (0.4 + 3.6 * Math.sqrt(Math.abs(e.w) / maxW)).toFixed(2) }, gEdges);
  });
  var gNodes = make("g", { id: "nodes" }, svg);
  nodes.forEach(function (n) {
    var el;
    if (n.kind === "f") {
      var r = n.infl === null ? 4.5 : 3 + 3.5 * (1 - Math.min(1, Math.max(0, n.infl)));
      el = make("circle", { cx: n.x, cy: n.y, r: r.toFixed(2), "class": "node n-f" }, gNodes);
    } else if (n.kind === "e") {
      el = make("rect", { x: n.x - 4, y: n.y - 4, width: 8, height: 8, "class": "node n-e" }, gNodes);
    } else if (n.kind === "m") {
      el = make("rect", { x: n.x - 6, y: n.y - 4, width: 12, height: 8, rx: 2, "class": "node n-m" }, gNodes);
    } else {
      var d = "M" + n.x + " " + (n.y - 7) + " L" + (n.x + 7) + " " + n.y + " L" + n.x + " " + (n.y + 7) + " L" + (n.x - 7) + " " + n.y + " Z";
      el = make("path", { d: d, "class": "node n-l" + (n.target ? " target" : "") }, gNodes);
    }
    el.setAttribute("data-i", n.i);
    n.el = el;
  });
  // layer names last (on top), in a group that follows horizontal scrolling so they stay readable
  var gNames = make("g", { "class": "band-names" }, svg);
  layers.forEach(function (l) {
    make("rect", { x: 0, y: bandY[l] + bandH[l] / 2 - 9, width: 44, height: 18, rx: 3, "class": "band-name-bg" }, gNames);
    make("text", { x: 6, y: bandY[l] + bandH[l] / 2 + 4, "class": "band-label" }, gNames).textContent = layerName(l);
  });
  canvas.addEventListener("scroll", function () {
    if (fit && fit.checked) gNames.removeAttribute("transform");
    else gNames.setAttribute("transform", "translate(" + canvas.scrollLeft + ",0)");
  });
  canvas.appendChild(svg);
  var tip = document.createElement("div");
  tip.className = "tip";
  canvas.appendChild(tip);

  // ------------------------------------------------------------------------------------------ state
  var prune = document.getElementById("prune"), pruneVal = document.getElementById("prune-val");
  var showErrors = document.getElementById("show-errors"), onlySel = document.getElementById("only-selected");
  var count = document.getElementById("edge-count"), details = document.getElementById("details");
  var search = document.getElementById("node-search");
  var fit = document.getElementById("fit-width");
  var selected = null;

  function apply() {
    var pct = Number(prune.value), keep = Math.max(1, Math.round(links.length * pct / 100));
    var errs = showErrors.checked, visible = 0, touched = new Set();
    pruneVal.textContent = pct + "%";
    links.forEach(function (e) {
      var on = e.k < keep && (errs || (e.s.kind !== "e" && e.t.kind !== "e"));
      if (on && onlySel.checked && selected) on = e.s === selected || e.t === selected;
      e.el.style.display = on ? "" : "none";
      var hl = selected && (e.s === selected || e.t === selected);
      e.el.classList.toggle("hl", !!(on && hl));
      if (on) { visible++; touched.add(e.s); touched.add(e.t); }
    });
    nodes.forEach(function (n) {
      n.el.style.display = n.kind === "e" && !errs ? "none" : "";
      n.el.classList.toggle("faded", !touched.has(n) && n !== selected);
    });
    svg.classList.toggle("has-sel", !!selected);
    var cut = links.length ? Math.abs(links[Math.min(keep, links.length) - 1].w) : 0;
    count.textContent = "showing " + visible + " of " + links.length + " edges (|w| ≥ " + num(cut) + ")";
    count.setAttribute("data-visible", visible);
  }

  function edgeList(list, other) {
    var rows = list.slice().sort(function (a, b) { return Math.abs(b.w) - Math.abs(a.w); }).slice(0, 10);
    if (!rows.length) return '<p class="muted">none</p>';
    return "<table class=\"edges\">" + rows.map(function (e) {
      var m = other(e);
      return "<tr><td class=\"num " + (e.w >= 0 ? "pos" : "neg") + "\">" + (e.w >= 0 ? "+" : "") + num(e.w) +
        "</td><td><a href=\"#node=" + encodeURIComponent(m.id) + "\" data-i=\"" + m.i + "\">" + esc(name(m)) + "</a>" +
        (m.kind === "f" && m.label ? "<div class=\"sub\">" + esc(m.label.slice(0, 90)) + "</div>" : "") + "</td></tr>";
    }).join("") + "</table>";
  }

  function select(n, scroll) {
    if (selected) selected.el.classList.remove("sel");
    selected = n;
    if (!n) {
      details.innerHTML = '<p class="muted">Click a node to see its details.</p>';
      apply();
      return;
    }
    n.el.classList.add("sel");
    var kinds = { f: "transcoder feature", e: "MLP reconstruction error", m: "token embedding", l: "output logit" };
    var rows = [["kind", kinds[n.kind]], ["layer", layerName(n.layer)],
                ["position", n.pos + " (“" + esc(shown(tokenAt(n.pos))) + "”)"]];
    if (n.act !== null) rows.push(["activation", num(n.act)]);
    if (n.infl !== null) rows.push(["influence (cumulative; lower = more important)", num(n.infl)]);
    if (n.kind === "l") rows.push(["probability", num(n.prob)]);
    rows.push(["edges in / out", n.ins.length + " / " + n.outs.length]);
    var href = featureHref(n);
    details.innerHTML = "<h3>" + esc(name(n)) + "</h3>" +
      (n.label && n.kind === "f" ? '<p class="label">' + esc(n.label) + "</p>" : "") +
      (href ? '<p><a class="button" href="' + href + '">feature page →</a></p>' : "") +
      '<table class="kv">' + rows.map(function (r) { return "<tr><th>" + r[0] + "</th><td>" + r[1] + "</td></tr>"; }).join("") + "</table>" +
      "<h4>Strongest inputs</h4>" + edgeList(n.ins, function (e) { return e.s; }) +
      "<h4>Strongest outputs</h4>" + edgeList(n.outs, function (e) { return e.t; });
    details.setAttribute("data-node", n.id);
    if (scroll) {  // centre the node inside the canvas only; the page itself does not jump
      canvas.scrollLeft = n.x - canvas.clientWidth / 2;
      canvas.scrollTop = n.y - canvas.clientHeight / 2;
    }
    apply();
  }

  svg.addEventListener("click", function (ev) {
    var i = ev.target.getAttribute && ev.target.getAttribute("data-i");
    select(i === null || i === undefined ? null : nodes[Number(i)], false);
  });
  details.addEventListener("click", function (ev) {
    var a = ev.target.closest && ev.target.closest("a[data-i]");
    if (a) { ev.preventDefault(); select(nodes[Number(a.getAttribute("data-i"))], true); }
  });
  svg.addEventListener("mousemove", function (ev) {
    var i = ev.target.getAttribute && ev.target.getAttribute("data-i");
    if (i === null || i === undefined) { tip.style.display = "none"; return; }
    var n = nodes[Number(i)], box = canvas.getBoundingClientRect();
    tip.innerHTML = "<b>" + esc(name(n)) + "</b>" + (n.kind === "f" && n.label ? "<br>" + esc(n.label.slice(0, 160)) : "") +
      (n.act !== null ? "<br>activation " + num(n.act) : "");
    tip.style.display = "block";
    tip.style.left = (ev.clientX - box.left + canvas.scrollLeft + 14) + "px";
    tip.style.top = (ev.clientY - box.top + canvas.scrollTop + 14) + "px";
  });
  svg.addEventListener("mouseleave", function () { tip.style.display = "none"; });
  [prune, showErrors, onlySel].forEach(function (c) { c.addEventListener("input", apply); });

  var FEAT = /^\s*l?(\d+)\s*[\/ f]+(\d+)\s*$/i;
  function matches(n, q) {
    var m = FEAT.exec(q);
    if (m) return n.kind === "f" && n.layer === Number(m[1]) && n.feature === Number(m[2]);
    q = q.toLowerCase();
    return (n.label || "").toLowerCase().indexOf(q) >= 0 || (n.kind === "m" && tokenAt(n.pos).toLowerCase() === q);
  }
  search.addEventListener("input", function () {
    var q = search.value.trim();
    nodes.forEach(function (n) { n.el.classList.toggle("match", !!q && matches(n, q)); });
  });
  search.addEventListener("keydown", function (ev) {
    if (ev.key !== "Enter") return;
    var q = search.value.trim(), hit = q && nodes.find(function (n) { return matches(n, q); });
    if (hit) select(hit, true);
  });

  function fromHash() {
    var m = /^#node=(.+)$/.exec(location.hash);
    if (!m) return;
    var id = decodeURIComponent(m[1]), n = nodes.find(function (x) { return x.id === id; });
    if (!n) return;
    select(n, true);
    var section = document.getElementById("viewer");  // arriving from a feature page: show the viewer
    if (section && section.scrollIntoView) section.scrollIntoView({ block: "start" });
  }
  function applyFit() {  // zoomed-out overview of a long prompt: the whole graph in the canvas width
    if (fit && fit.checked) {
      svg.setAttribute("width", "100%");
      svg.removeAttribute("height");  // the viewBox keeps the aspect ratio
    } else {
      svg.setAttribute("width", width);
      svg.setAttribute("height", height);
    }
  }
  if (fit) fit.addEventListener("input", applyFit);
  window.addEventListener("hashchange", fromHash);
  // start with about 400 edges whatever the graph's size: readable, and a big graph stays fast
  prune.value = Math.min(100, Math.max(1, Math.round(40000 / Math.max(links.length, 1))));
  apply();
  applyFit();
  canvas.scrollLeft = canvas.scrollWidth;  // the target logit is at the last position: start there
  fromHash();
})();
