/* leaktrace HTML report: builds the page from the JSON in #leaktrace-data. No network, no
 * libraries. Sections: summary, icicle graph, loss records, growth timeline, facts. A diff
 * page (D.diff) has each record's BEFORE side too: bytes gained, freed, before and after.
 * A URL hash "#drive=search:NAME;click:NAME;weight:VIEW;filter:TEXT;kind:KIND;min:BYTES;
 * sort:COLUMN" replays those actions after loading (the browser tests use it). */
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("leaktrace-data").textContent);
  const FR = D.frames; // [name, file, line, module, inlined]
  const ROW = 18; // px per icicle row
  const MIN_FRACTION = 0.002; // narrower frames are not drawn (their bytes still count)

  const num = (n) => Number(n).toLocaleString("en-US");
  const plural = (n, w) => num(n) + " " + w + (n === 1 ? "" : "s");
  function human(n) {
    const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let u = 0, v = n;
    while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
    return u === 0 ? plural(n, "byte") : v.toFixed(1) + " " + units[u];
  }
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (v !== null && v !== undefined) e.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }
  function pathOf(leaf) { // frame ids, outermost first
    const path = [];
    for (let n = leaf; n >= 0; n = D.nodes[2 * n]) path.push(D.nodes[2 * n + 1]);
    return path.reverse();
  }
  const frameLabel = (f) => FR[f][0] + (FR[f][4] ? " (inlined)" : "");
  const frameWhere = (f) => (FR[f][1] ? FR[f][1] + (FR[f][2] ? ":" + FR[f][2] : "") : "");

  // Records: [leaf, api, leakKind, bytes, ownBytes, blocks, allocCount, allocBytes,
  //           lossRecord, stackId, growthVerdict (, beforeBytes, beforeBlocks, status)]
  const R = D.records.map((r, i) => ({
    i, leaf: r[0], api: D.apis[r[1]], kind: r[2] < 0 ? null : D.kinds[r[2]], bytes: r[3],
    own: r[4], blocks: r[5], allocs: r[6], allocBytes: r[7], loss: r[8], id: r[9],
    growth: r[10], path: pathOf(r[0]),
    before: D.diff ? r[11] : 0, beforeBlocks: D.diff ? r[12] : 0, status: D.diff ? r[13] : "",
  }));
  const shown = (r) => r.kind === null || D.shownKinds === null || D.shownKinds.includes(r.kind);
  const WEIGHTS = D.diff ? {
    gained: { label: "bytes gained since BEFORE", of: (r) => Math.max(0, r.own - r.before),
      bytes: true },
    freed: { label: "bytes gone since BEFORE", of: (r) => Math.max(0, r.before - r.own),
      bytes: true },
    after: { label: "bytes in AFTER", of: (r) => r.own, bytes: true },
    beforeBytes: { label: "bytes in BEFORE", of: (r) => r.before, bytes: true },
  } : {
    leaked: { label: "leaked bytes", of: (r) => (shown(r) ? r.own : 0), bytes: true },
    live: { label: "live bytes", of: (r) => r.own, bytes: true },
    allocBytes: { label: "allocated bytes", of: (r) => r.allocBytes, bytes: true },
    allocCount: { label: "allocations", of: (r) => r.allocs, bytes: false },
  };

  /* ---- header and summary ---- */
  const program = D.facts.program ? D.facts.program.split("/").pop() : D.facts.source;
  document.title = "leaktrace: " + program;
  const side = (s) => (s.capture || s.program || "") + (s.pid ? " (pid " + s.pid + ")" : "");
  const header = D.diff ? el("header", {}, el("h1", {}, "leaktrace diff: " + program),
    el("p", { class: "sub" }, "BEFORE: " + side(D.sides.before)),
    el("p", { class: "sub" }, "AFTER: " + side(D.sides.after)))
    : el("header", {}, el("h1", {}, "leaktrace report: " + program),
      el("p", { class: "sub" }, (D.facts.pid ? "pid " + D.facts.pid + ", " : "") +
        "memory still live " + D.facts.when));

  function diffSummarySection() {
    const total = (f) => R.reduce((a, r) => a + f(r), 0);
    const before = total((r) => r.before), after = total((r) => r.own);
    const statuses = ["grew", "shrank", "new", "gone", "same"].map((st) => el("tr",
      { "data-status": st }, el("th", {}, st + ":"),
      el("td", { class: "count" }, String(R.filter((r) => r.status === st).length))));
    return el("section", { id: "summary-section" }, el("h2", {}, "What changed"),
      el("p", { id: "diff-total", "data-before": before, "data-after": after },
        "total: " + plural(before, "byte") + " \u2192 " + plural(after, "byte") + " (" +
        (after >= before ? "+" : "") + num(after - before) + " bytes)"),
      el("table", { id: "summary" }, el("tbody", {}, ...statuses)));
  }
  function summarySection() {
    if (D.diff) return diffSummarySection();
    const rows = [];
    const row = (label, bytes, blocks, cls) => el("tr", { "data-kind": label, class: cls },
      el("th", {}, label + ":"),
      el("td", { class: "bytes", "data-bytes": bytes }, plural(bytes, "byte")),
      el("td", { class: "blocks", "data-blocks": blocks }, "in " + plural(blocks, "block")));
    if (D.summary.leaks) {
      for (const [k, b, n] of D.summary.leaks) rows.push(row(k, b, n, k.replace(/ /g, "-")));
      rows.push(row("suppressed", D.summary.suppressed[0], D.summary.suppressed[1], "muted"));
    } else {
      rows.push(row("live", D.summary.live[0], D.summary.live[1], ""));
    }
    const extra = [];
    if (D.summary.allocated[0] !== null)
      extra.push(el("p", {}, "allocated during the run: " + plural(D.summary.allocated[0],
        "allocation") + ", " + human(D.summary.allocated[1])));
    extra.push(el("p", {}, "still live " + D.facts.when + ": " + human(D.summary.live[0]) +
      " in " + plural(D.summary.live[1], "block") + " (" + D.summary.byApi.map(
        ([a, b, n]) => a + " " + human(b)).join(", ") + ")"));
    return el("section", { id: "summary-section" }, el("h2", {}, "LEAK SUMMARY"),
      el("table", { id: "summary" }, el("tbody", {}, ...rows)), ...extra);
  }

  /* ---- icicle graph ---- */
  let weight = Object.keys(WEIGHTS)[0], query = "", tree = null, zoomed = null;
  const flame = el("div", { id: "flame" });
  const matchInfo = el("span", { id: "match-info" });
  const searchBox = el("input", { id: "search", type: "search", placeholder: "search functions",
    oninput: () => { query = searchBox.value.trim().toLowerCase(); drawFlame(); } });
  const weightSelect = el("select", { id: "weight", onchange: () => {
    weight = weightSelect.value; buildTree(); zoomed = tree; drawFlame(); } },
  ...Object.entries(WEIGHTS).map(([k, w]) => el("option", { value: k }, w.label)));

  const START = new Set(D.startFrames || []);
  const redraw = () => { buildTree(); zoomed = tree; drawFlame(); };
  const hideStartup = el("input", { type: "checkbox", id: "hide-startup", onchange: redraw });
  const inverted = el("input", { type: "checkbox", id: "inverted", onchange: redraw });
  function buildTree() {
    tree = { name: "all", f: -1, value: 0, children: new Map(), parent: null, depth: 0 };
    const of = WEIGHTS[weight].of;
    for (const r of R) {
      const w = of(r);
      if (!w) continue;
      let node = tree;
      node.value += w;
      let path = r.path;
      if (hideStartup.checked) {
        let at = 0;
        while (at < path.length - 1 && START.has(FR[path[at]][0])) at++;
        path = path.slice(at);
      }
      if (inverted.checked) path = [...path].reverse();
      for (const f of path) {
        const key = FR[f][0] + (FR[f][4] ? "\u0001" : "");
        let child = node.children.get(key);
        if (!child) {
          child = { name: FR[f][0], f, value: 0, children: new Map(), parent: node,
            depth: node.depth + 1 };
          node.children.set(key, child);
        }
        child.value += w;
        node = child;
      }
    }
  }
  const amount = (v) => (WEIGHTS[weight].bytes ? human(v) : plural(v, "allocation"));
  const matches = (name) => query !== "" && name.toLowerCase().includes(query);

  function drawFlame() {
    flame.textContent = "";
    if (!tree.value) {
      flame.append(el("p", { class: "empty" }, "nothing to show for " + WEIGHTS[weight].label));
      flame.style.height = "auto";
      matchInfo.textContent = "";
      return;
    }
    const ancestors = [];
    for (let n = zoomed; n; n = n.parent) ancestors.unshift(n);
    let maxDepth = 0;
    const box = (node, x, w, cls) => {
      const inl = node.f >= 0 && FR[node.f][4];
      const pct = (100 * node.value / tree.value).toFixed(2);
      const label = node.f < 0 ? "all" : node.name + (inl ? " (inlined)" : "");
      const d = el("div", {
        class: "fr" + (inl ? " inl" : "") + (cls ? " " + cls : "") +
          (node.f >= 0 && matches(node.name) ? " match" : ""),
        "data-name": node.f < 0 ? "all" : node.name, "data-value": node.value,
        title: label + "\n" + amount(node.value) + " (" + pct + "% of all)" +
          (node.f >= 0 && FR[node.f][1] ? "\n" + frameWhere(node.f) : "") +
          (node.f >= 0 && FR[node.f][3] ? "  [" + FR[node.f][3] + "]" : ""),
        style: "left:" + (100 * x) + "%;width:" + (100 * w) + "%;top:" + (node.depth * ROW) +
          "px;background:" + color(node),
        onclick: (ev) => { ev.stopPropagation(); zoomed = node; drawFlame(); },
      }, label);
      flame.append(d);
      maxDepth = Math.max(maxDepth, node.depth);
    };
    for (const a of ancestors.slice(0, -1)) box(a, 0, 1, "ancestor");
    const walk = (node, x, w) => {
      box(node, x, w, node === zoomed ? "zoomed" : "");
      let cx = x;
      const kids = [...node.children.values()].sort((a, b) => b.value - a.value ||
        (a.name < b.name ? -1 : 1));
      for (const c of kids) {
        const cw = w * c.value / node.value;
        if (cw >= MIN_FRACTION) walk(c, cx, cw);
        cx += cw;
      }
    };
    walk(zoomed, 0, 1);
    flame.style.height = ((maxDepth + 1) * ROW) + "px";
    // Matched total: bytes under the outermost matching frames of the zoomed view.
    let matched = 0;
    const sum = (node) => {
      if (node.f >= 0 && matches(node.name)) { matched += node.value; return; }
      for (const c of node.children.values()) sum(c);
    };
    if (query) sum(zoomed);
    matchInfo.textContent = query ? "matched: " + amount(matched) + " (" +
      (100 * matched / zoomed.value).toFixed(1) + "% of the view)" : "";
    matchInfo.dataset.matched = query ? matched : "";
  }
  function color(node) {
    if (node.f < 0) return "#c8c8c8";
    let h = 0;
    for (const ch of node.name) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
    const own = FR[node.f][3] && FR[node.f][3] === (D.facts.program || "").split("/").pop();
    return own ? "hsl(" + (10 + h % 40) + ",85%," + (58 + h % 12) + "%)"
      : "hsl(" + (190 + h % 40) + ",45%," + (68 + h % 10) + "%)";
  }
  function flameSection() {
    buildTree();
    zoomed = tree;
    return el("section", { id: "flame-section" },
      el("h2", {}, "Where the memory was allocated"),
      el("div", { class: "controls" }, "show ", weightSelect, " ", searchBox, " ",
        el("button", { onclick: () => { zoomed = tree; drawFlame(); } }, "reset zoom"), " ",
        el("label", {}, hideStartup, "hide start-up frames"), " ",
        el("label", {}, inverted, "allocation sites on top (inverted)"), " ", matchInfo),
      el("p", { class: "hint" }, "Callers above callees (inverted: callees above callers); " +
        "width is the share of the view. " +
        "Click a frame to zoom, a frame above it to zoom out. Frames of the program are warm, " +
        "library frames blue, inlined frames dashed."), flame);
  }

  /* ---- loss records table ---- */
  const DIFF_COLUMNS = [
    ["status", "status", (r) => r.status], ["kind", "leak kind", (r) => r.kind || "live"],
    ["api", "API", (r) => r.api], ["change", "change (bytes)", (r) => r.own - r.before],
    ["before", "before", (r) => r.before], ["bytes", "after", (r) => r.bytes],
    ["blocks", "blocks after", (r) => r.blocks],
  ];
  const COLUMNS = D.diff ? DIFF_COLUMNS.concat(commonColumns()) : [
    ["loss", "#", (r) => r.loss || ""], ["kind", "leak kind", (r) => r.kind || "live"],
    ["api", "API", (r) => r.api], ["bytes", "bytes", (r) => r.bytes],
    ["blocks", "blocks", (r) => r.blocks], ["allocs", "allocations", (r) => r.allocs],
  ].concat(commonColumns());
  function commonColumns() {
    const leaf = (r) => r.path[r.path.length - 1];
    return [
      ["function", "function", (r) => (r.path.length ? frameLabel(leaf(r)) : "")],
      ["where", "file:line", (r) => (r.path.length ? frameWhere(leaf(r)) : "")],
      ["module", "module", (r) => (r.path.length ? FR[leaf(r)][3] : "")],
    ];
  }
  const NUMERIC = new Set(["loss", "bytes", "blocks", "allocs", "change", "before"]);
  let sortKey = D.diff ? "change" : "bytes", sortDesc = true, limit = 200;
  const kindFilter = el("select", { id: "filter-kind", onchange: () => drawTable() },
    el("option", { value: "" }, "every kind"),
    ...[...new Set(R.map((r) => r.kind || "live"))].map((k) => el("option", { value: k }, k)));
  const textFilter = el("input", { id: "filter-text", type: "search",
    placeholder: "function, file or module", oninput: () => drawTable() });
  const minFilter = el("input", { id: "filter-min", type: "number", min: "0",
    placeholder: "min bytes", oninput: () => drawTable() });
  const tbody = el("tbody", {});
  const count = el("p", { id: "record-count" });
  const more = el("button", { id: "show-more", onclick: () => { limit = Infinity; drawTable(); } },
    "show all");

  function matchesText(r, q) {
    return r.path.some((f) => FR[f][0].toLowerCase().includes(q) ||
      FR[f][1].toLowerCase().includes(q) || FR[f][3].toLowerCase().includes(q));
  }
  function drawTable() {
    const kind = kindFilter.value, q = textFilter.value.trim().toLowerCase();
    const min = Number(minFilter.value) || 0;
    const rows = R.filter((r) => (!kind || (r.kind || "live") === kind) && r.bytes >= min &&
      (!q || matchesText(r, q)));
    const col = COLUMNS.find((c) => c[0] === sortKey);
    rows.sort((a, b) => {
      const x = col[2](a), y = col[2](b);
      const c = NUMERIC.has(sortKey) ? x - y : String(x).localeCompare(String(y));
      return sortDesc ? -c : c;
    });
    tbody.textContent = "";
    for (const r of rows.slice(0, limit)) {
      const tr = el("tr", { class: "rec " + (r.kind || "live").replace(/ /g, "-") +
        (r.status ? " " + r.status : ""),
        "data-stack": r.id, "data-bytes": r.bytes,
        onclick: () => toggleStack(tr, r) },
      ...COLUMNS.map(([k, , get]) => el("td", { class: "c-" + k },
        k === "bytes" || k === "before" ? num(get(r))
          : k === "change" ? (get(r) > 0 ? "+" : "") + num(get(r)) : String(get(r)))));
      tbody.append(tr);
    }
    count.textContent = "showing " + Math.min(rows.length, limit) + " of " + rows.length +
      " matching records (" + R.length + " in the page, " + D.recordsTotal + " in the report)";
    count.dataset.matching = rows.length;
    more.hidden = rows.length <= limit;
  }
  function toggleStack(tr, r) {
    const next = tr.nextElementSibling;
    if (next && next.classList.contains("stack")) { next.remove(); return; }
    const frames = [...r.path].reverse();
    const list = el("ol", { start: "0" }, ...frames.map((f) => el("li",
      { class: FR[f][4] ? "inl" : "" }, el("b", {}, frameLabel(f)), "  ", frameWhere(f),
      FR[f][3] ? "  [" + FR[f][3] + "]" : "")));
    if (!frames.length) list.append(el("li", {}, "(no backtrace)"));
    const info = el("p", {}, D.diff ? "stack " + r.id + ", " + r.api + ", " + r.status + ": " +
      plural(r.before, "byte") + " in " + plural(r.beforeBlocks, "block") + " \u2192 " +
      plural(r.bytes, "byte") + " in " + plural(r.blocks, "block")
      : "stack " + r.id + ", " + r.api + ", " + plural(r.blocks, "block") +
      ", " + num(r.bytes) + " bytes; " + plural(r.allocs, "allocation") + " (" +
      human(r.allocBytes) + ") from this backtrace during the run" +
      (r.growth ? "; growth: " + r.growth : ""));
    const shares = D.byProcess && D.byProcess[r.i];
    if (shares) info.append(el("span", { class: "by-process" }, "; per process: " +
      shares.map(([pid, b, n]) => "pid " + pid + " " + plural(b, "byte") + " in " +
        plural(n, "block")).join(", ")));
    tr.after(el("tr", { class: "stack" }, el("td", { colspan: COLUMNS.length }, info, list)));
  }
  function tableSection() {
    const head = el("tr", {}, ...COLUMNS.map(([k, label]) => el("th", {
      "data-sort": k, onclick: () => {
        sortDesc = sortKey === k ? !sortDesc : NUMERIC.has(k);
        sortKey = k; drawTable();
      } }, label)));
    drawTable();
    return el("section", { id: "records-section" },
      el("h2", {}, D.diff ? "Backtraces, largest change first" : "Loss records"),
      el("div", { class: "controls" }, kindFilter, " ", textFilter, " ", minFilter),
      count, el("table", { id: "records" }, el("thead", {}, head), tbody), more);
  }

  /* ---- growth timeline ---- */
  const VERDICT_COLORS = { growing: "#d62728", plateaued: "#ff7f0e", stable: "#2ca02c" };
  function timelineSection() {
    const T = D.timeline;
    if (!T || !T.total.length) return null;
    const W = 900, H = 300, L = 70, B = 30, ns = "http://www.w3.org/2000/svg";
    const all = [T.total, ...T.lines.map((l) => l.points)].flat();
    const tMax = Math.max(...all.map((p) => p[0]), 1e-9);
    const vMax = Math.max(...all.map((p) => p[1]), 1);
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("id", "timeline");
    const line = (pts, colour, cls, label) => {
      const p = document.createElementNS(ns, "polyline");
      p.setAttribute("points", pts.map(([t, v]) => (L + (W - L - 10) * t / tMax).toFixed(1) +
        "," + (H - B - (H - B - 10) * v / vMax).toFixed(1)).join(" "));
      p.setAttribute("stroke", colour);
      p.setAttribute("class", cls);
      const title = document.createElementNS(ns, "title");
      title.textContent = label;
      p.append(title);
      svg.append(p);
    };
    for (const [y, text] of [[H - B, "0"], [10, human(vMax)]]) {
      const t = document.createElementNS(ns, "text");
      t.setAttribute("x", 4); t.setAttribute("y", y + 4); t.textContent = text;
      svg.append(t);
    }
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", W - 10); t.setAttribute("y", H - 8);
    t.setAttribute("text-anchor", "end"); t.textContent = tMax.toFixed(2) + " s";
    svg.append(t);
    line(T.total, "#333", "total", "process total");
    for (const l of T.lines) line(l.points, VERDICT_COLORS[l.verdict] || "#888", "stack " + l.verdict,
      l.label + " (" + l.verdict + ")");
    const legend = el("ul", { class: "legend" },
      el("li", {}, el("span", { class: "swatch", style: "background:#333" }), "process total"),
      ...T.lines.map((l) => el("li", { "data-verdict": l.verdict }, el("span", { class: "swatch",
        style: "background:" + (VERDICT_COLORS[l.verdict] || "#888") }), l.label + " — " +
        l.verdict)));
    return el("section", { id: "timeline-section" }, el("h2", {}, "Growth over the run"),
      svg, legend);
  }

  /* ---- facts ---- */
  function factsSection() {
    const F = D.facts, items = [];
    const add = (k, v) => { if (v !== null && v !== undefined && v !== "") items.push(
      el("dt", {}, k), el("dd", {}, String(v))); };
    add("program", F.program);
    add("command", (F.command || []).join(" "));
    add("pid", F.pid);
    add("source", F.source);
    add("capture", F.capture);
    if (F.start) add("started", new Date(F.start * 1000).toISOString());
    if (F.end) add("captured", new Date(F.end * 1000).toISOString() + " (" + F.when + ")");
    if (F.start && F.end) add("run time", (F.end - F.start).toFixed(3) + " s");
    if (F.scan) add("scan", Object.entries(F.scan).map(([k, v]) => k + " " + v).join(", "));
    for (const [k, v] of Object.entries(F.counters || {})) add(k, num(v));
    for (const p of D.processes || []) add("merged: pid " + p.pid, (p.capture_path || "") +
      (p.definitely_lost ? "  (definitely lost " + plural(p.definitely_lost.bytes, "byte") +
        ")" : "  (live " + plural(p.live.bytes, "byte") + ")"));
    return el("section", { id: "facts-section" }, el("h2", {}, "Capture"),
      F.fatal ? el("pre", { id: "fatal" }, F.fatal.join("\n")) : null,
      F.invalidFrees ? el("pre", { id: "invalid-frees" }, F.invalidFrees.join("\n")) : null,
      el("dl", { id: "facts" }, ...items),
      F.notes.length ? el("ul", { id: "notes" }, ...F.notes.map((n) => el("li", {}, n))) : null);
  }

  document.body.append(header, summarySection(), flameSection(), tableSection());
  const timeline = timelineSection();
  if (timeline) document.body.append(timeline);
  if (!D.diff) document.body.append(factsSection());
  document.body.append(el("footer", {}, "written by leaktrace; works offline"));
  drawFlame();
  // Milliseconds from navigation to a drawn page: bench/html_bench.py reads it.
  document.body.dataset.renderMs = performance.now().toFixed(1);

  /* ---- replay of actions from the URL hash (for tests and for sharing a view) ---- */
  const drive = decodeURIComponent(location.hash).match(/^#drive=(.*)$/);
  if (drive) {
    for (const step of drive[1].split(";")) {
      const at = step.indexOf(":"), op = step.slice(0, at), arg = step.slice(at + 1);
      if (op === "search") { searchBox.value = arg; searchBox.dispatchEvent(new Event("input")); }
      if (op === "click") {
        const target = [...flame.querySelectorAll(".fr")].find((d) => d.dataset.name === arg);
        if (target) target.click();
      }
      if (op === "weight") { weightSelect.value = arg; weightSelect.dispatchEvent(new Event("change")); }
      if (op === "invert" || op === "hidestartup") {
        const box = op === "invert" ? inverted : hideStartup;
        box.checked = arg === "1";
        box.dispatchEvent(new Event("change"));
      }
      if (op === "filter") { textFilter.value = arg; textFilter.dispatchEvent(new Event("input")); }
      if (op === "kind") { kindFilter.value = arg; kindFilter.dispatchEvent(new Event("change")); }
      if (op === "min") { minFilter.value = arg; minFilter.dispatchEvent(new Event("input")); }
      if (op === "sort") {
        const th = document.querySelector('th[data-sort="' + arg + '"]');
        if (th) th.click();
      }
      if (op === "expand") {
        const tr = document.querySelector('tr.rec[data-stack="' + arg + '"]');
        if (tr) tr.click();
      }
    }
    document.body.dataset.driven = "done";
  }
})();
