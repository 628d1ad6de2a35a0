// kdfir console, Hunt: a KQL editor (highlighting, completion of tables
// and columns from GET /v1/hunt/schema, errors marked at their line and
// column), the built-in and saved queries, a time range, and the result
// of POST /v1/hunt in a virtualised grid with CSV and JSON export and an
// SVG chart. #/hunt?q=QUERY opens a query.
"use strict";

const hunt = {
  built: false, schema: null, result: null, order: [], sort: { col: -1, dir: 1 },
  error: null, complete: { items: [], sel: 0, start: 0 },
};

const KQL_KEYWORDS = ["where", "project", "project-away", "project-rename", "extend", "summarize", "by", "render", "take", "limit",
  "sort", "order", "top", "join", "union", "count", "distinct", "let", "mv-expand", "parse", "and", "or", "not", "in", "!in",
  "has", "!has", "contains", "!contains", "startswith", "endswith", "matches", "regex", "between", "asc", "desc", "on", "kind",
  "inner", "leftouter", "rightouter", "fullouter", "leftanti", "leftsemi", "with", "timechart", "columnchart", "barchart",
  "piechart", "search", "getschema", "true", "false", "null", "ago", "now", "bin", "datetime", "timespan", "dynamic", "has_any",
  "in~", "=~", "!~", "serialize", "make-series", "top-nested", "as", "invoke", "evaluate"];
const KQL_KW = new Set(KQL_KEYWORDS);
const SAVED = "kdfir.savedQueries";

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  kids.forEach((k) => e.appendChild(typeof k === "string" ? document.createTextNode(k) : k));
  return e;
}

function buildHunt() {
  const sec = $("hunt");
  const lib = el("select", { id: "hunt-library", "aria-label": "queries" }, el("option", { value: "", text: "Queries…" }));
  const since = el("select", { id: "hunt-since", "aria-label": "time range" },
    ...[["1h", "last hour"], ["24h", "last 24 hours"], ["7d", "last 7 days"], ["30d", "last 30 days"], ["custom", "custom…"]]
      .map(([v, t]) => el("option", { value: v, text: t })));
  since.value = "24h";
  const from = el("input", { id: "hunt-from", type: "datetime-local", "aria-label": "from", hidden: "" });
  const to = el("input", { id: "hunt-to", type: "datetime-local", "aria-label": "to", hidden: "" });
  const editor = el("div", { id: "hunt-editor", class: "editor" },
    el("pre", { id: "hunt-highlight", "aria-hidden": "true" }),
    el("textarea", { id: "hunt-query", spellcheck: "false", autocomplete: "off", "aria-label": "KQL query" }),
    el("ul", { id: "hunt-complete", class: "complete", role: "listbox", hidden: "" }));
  sec.append(
    el("h2", { text: "Hunt" }),
    el("div", { class: "toolbar" }, lib, el("button", { id: "hunt-save", text: "Save" }), since, from, to,
      el("button", { id: "hunt-run", text: "Run" }), el("span", { class: "muted", text: "Ctrl+Enter runs, Ctrl+Space completes" })),
    editor,
    el("p", { id: "hunt-error", class: "error", role: "alert" }),
    el("div", { class: "toolbar" }, el("span", { id: "hunt-stats", class: "stats" }),
      el("button", { id: "hunt-csv", text: "Export CSV", disabled: "" }), el("button", { id: "hunt-json", text: "Export JSON", disabled: "" })),
    el("div", { id: "hunt-chart", class: "chart" }),
    el("div", { id: "hunt-grid", class: "grid" }),
    el("pre", { id: "hunt-detail", class: "detail", hidden: "" }));

  const ta = $("hunt-query");
  ta.value = "KubeAudit\n| where verb in (\"create\", \"delete\")\n| summarize Requests = count() by bin(stageTimestamp, 1h), verb\n| render timechart";
  ta.addEventListener("input", () => { hunt.error = null; paint(); suggest(false); });
  ta.addEventListener("scroll", () => { $("hunt-highlight").scrollTop = ta.scrollTop; $("hunt-highlight").scrollLeft = ta.scrollLeft; });
  ta.addEventListener("keydown", editorKey);
  ta.addEventListener("blur", () => setTimeout(() => { $("hunt-complete").hidden = true; }, 150));
  $("hunt-run").addEventListener("click", runHunt);
  $("hunt-save").addEventListener("click", saveQuery);
  since.addEventListener("change", () => { from.hidden = to.hidden = since.value !== "custom"; });
  lib.addEventListener("change", () => {
    const o = lib.selectedOptions[0];
    if (o && o.dataset.query) { ta.value = o.dataset.query; hunt.error = null; paint(); }
    lib.value = "";
  });
  $("hunt-csv").addEventListener("click", () => exportResult("csv"));
  $("hunt-json").addEventListener("click", () => exportResult("json"));
  $("hunt-grid").addEventListener("scroll", drawRows);
  paint();
  hunt.built = true;
}

async function loadHuntData() {
  try {
    const [schema, lib] = await Promise.all([api("GET", "/v1/hunt/schema"), api("GET", "/v1/hunt/queries")]);
    hunt.schema = schema;
    fillLibrary(lib.queries || []);
    paint();
  } catch (err) {
    $("hunt-error").textContent = err.message;
  }
}

function fillLibrary(builtins) {
  const lib = $("hunt-library");
  lib.querySelectorAll("optgroup").forEach((g) => g.remove());
  const group = (label, qs) => {
    if (!qs.length) return;
    const g = el("optgroup", { label });
    qs.forEach((q) => {
      const o = el("option", { value: label + ":" + q.name, text: q.name + (q.description ? " — " + q.description.slice(0, 70) : "") });
      o.dataset.query = q.query;
      g.appendChild(o);
    });
    lib.appendChild(g);
  };
  group("Built-in", builtins);
  group("Saved", JSON.parse(localStorage.getItem(SAVED) || "[]"));
}

function saveQuery() {
  const name = prompt("Save this query as");
  if (!name) return;
  const saved = JSON.parse(localStorage.getItem(SAVED) || "[]").filter((q) => q.name !== name);
  saved.push({ name, query: $("hunt-query").value });
  localStorage.setItem(SAVED, JSON.stringify(saved));
  loadHuntData();
}

// Tokens for highlighting: comments, strings, numbers, names, the rest.
const TOKEN = /(\/\/[^\n]*)|(@?"(?:[^"\\\n]|\\.)*"?|@?'(?:[^'\\\n]|\\.)*'?)|(\b\d+(?:\.\d+)?(?:[a-z]+)?\b)|([A-Za-z_][\w-]*!?)|(\|)|(\s+|.)/gy;

function tableNames() {
  return (hunt.schema && hunt.schema.tables || []).map((t) => t.name);
}

// paint redraws the highlighted copy of the query, with the error's
// position marked.
function paint() {
  const src = $("hunt-query").value;
  const pre = $("hunt-highlight");
  const tables = new Set(tableNames());
  const errAt = hunt.error ? offsetOf(src, hunt.error.line, hunt.error.col) : -1;
  const frag = document.createDocumentFragment();
  let marked = false;
  const push = (s, cls, at) => {
    if (errAt >= at && errAt < at + s.length && !marked) {
      const i = errAt - at;
      if (i > 0) frag.appendChild(span(s.slice(0, i), cls));
      const ch = Array.from(s.slice(i))[0];
      const m = span(ch === "\n" ? "" : ch, "err-mark" + (ch === "\n" ? " eol" : ""));
      m.dataset.line = hunt.error.line;
      m.dataset.col = hunt.error.col;
      m.title = hunt.error.message;
      frag.appendChild(m);
      marked = true;
      const rest = s.slice(i + ch.length);
      if (ch === "\n") frag.appendChild(document.createTextNode("\n"));
      if (rest) frag.appendChild(span(rest, cls));
      return;
    }
    frag.appendChild(span(s, cls));
  };
  TOKEN.lastIndex = 0;
  let m;
  while (TOKEN.lastIndex < src.length && (m = TOKEN.exec(src))) {
    const at = m.index;
    let cls = "";
    if (m[1]) cls = "tok-com";
    else if (m[2]) cls = "tok-str";
    else if (m[3]) cls = "tok-num";
    else if (m[4]) {
      const word = m[4];
      if (tables.has(word)) cls = "tok-tab";
      else if (KQL_KW.has(word.toLowerCase())) cls = "tok-kw";
      else if (src[TOKEN.lastIndex] === "(") cls = "tok-fn";
    } else if (m[5]) cls = "tok-pipe";
    push(m[0], cls, at);
  }
  if (errAt >= src.length && !marked && hunt.error) {
    const mk = span("", "err-mark eol");
    mk.dataset.line = hunt.error.line;
    mk.dataset.col = hunt.error.col;
    mk.title = hunt.error.message;
    frag.appendChild(mk);
  }
  frag.appendChild(document.createTextNode("\n"));
  pre.replaceChildren(frag);
}

function span(s, cls) {
  if (!cls) return document.createTextNode(s);
  const e = document.createElement("span");
  e.className = cls;
  e.textContent = s;
  return e;
}

// offsetOf turns a 1-based line and column (in characters) into a UTF-16
// offset in src.
function offsetOf(src, line, col) {
  const lines = src.split("\n");
  let off = 0;
  for (let i = 0; i < line - 1 && i < lines.length; i++) off += lines[i].length + 1;
  const chars = Array.from(lines[line - 1] || "").slice(0, Math.max(col - 1, 0));
  return off + chars.join("").length;
}

// Completion: table names, the columns of the tables the query names (or
// of every table), and keywords, for the word before the caret.
function suggest(force) {
  const ta = $("hunt-query");
  const box = $("hunt-complete");
  const pos = ta.selectionStart;
  const before = ta.value.slice(0, pos);
  const word = (before.match(/[A-Za-z_][\w-]*$/) || [""])[0];
  if (!hunt.schema || (!force && word.length < 1)) { box.hidden = true; return; }
  const named = new Set(tableNames().filter((t) => new RegExp("\\b" + t + "\\b").test(ta.value)));
  const items = [];
  const seen = new Set();
  const add = (name, kind) => {
    if (seen.has(name) || !name.toLowerCase().startsWith(word.toLowerCase()) || name === word) return;
    seen.add(name);
    items.push({ name, kind });
  };
  hunt.schema.tables.forEach((t) => add(t.name, "table"));
  hunt.schema.tables.forEach((t) => {
    if (!named.size || named.has(t.name)) t.columns.forEach((c) => add(c.name, c.type));
  });
  KQL_KEYWORDS.forEach((k) => add(k, "keyword"));
  if (!items.length) { box.hidden = true; return; }
  hunt.complete = { items: items.slice(0, 50), sel: 0, start: pos - word.length };
  box.replaceChildren(...hunt.complete.items.map((it, i) => {
    const li = el("li", { role: "option", class: i === 0 ? "sel" : "" }, el("span", { text: it.name }), el("span", { text: it.kind }));
    li.addEventListener("mousedown", (ev) => { ev.preventDefault(); accept(i); });
    return li;
  }));
  // Place the list under the caret.
  const lines = before.split("\n");
  const cw = charWidth(), lh = 18;
  box.style.left = Math.min(8 + cw * Array.from(lines[lines.length - 1]).length - ta.scrollLeft, ta.clientWidth - 230) + "px";
  box.style.top = (8 + lh * lines.length - ta.scrollTop) + "px";
  box.hidden = false;
}

let measuredWidth = 0;
function charWidth() {
  if (measuredWidth) return measuredWidth;
  const probe = span("MMMMMMMMMM", "probe");
  $("hunt-highlight").appendChild(probe);
  measuredWidth = probe.getBoundingClientRect().width / 10 || 7.8;
  probe.remove();
  return measuredWidth;
}

function accept(i) {
  const ta = $("hunt-query");
  const it = hunt.complete.items[i];
  const end = ta.selectionStart;
  ta.value = ta.value.slice(0, hunt.complete.start) + it.name + ta.value.slice(end);
  ta.selectionStart = ta.selectionEnd = hunt.complete.start + it.name.length;
  $("hunt-complete").hidden = true;
  paint();
  ta.focus();
}

function editorKey(ev) {
  const box = $("hunt-complete");
  if ((ev.ctrlKey || ev.metaKey) && ev.key === "Enter") { ev.preventDefault(); box.hidden = true; runHunt(); return; }
  if (ev.ctrlKey && ev.key === " ") { ev.preventDefault(); suggest(true); return; }
  if (box.hidden) return;
  const c = hunt.complete;
  if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
    ev.preventDefault();
    c.sel = (c.sel + (ev.key === "ArrowDown" ? 1 : c.items.length - 1)) % c.items.length;
    [...box.children].forEach((li, i) => li.classList.toggle("sel", i === c.sel));
    box.children[c.sel].scrollIntoView({ block: "nearest" });
  } else if (ev.key === "Tab" || ev.key === "Enter") {
    ev.preventDefault();
    accept(c.sel);
  } else if (ev.key === "Escape") {
    box.hidden = true;
  }
}

function timeRange() {
  const v = $("hunt-since").value;
  if (v !== "custom") return { since: v };
  const r = {};
  if ($("hunt-from").value) r.since = new Date($("hunt-from").value).toISOString();
  if ($("hunt-to").value) r.until = new Date($("hunt-to").value).toISOString();
  return r;
}

async function runHunt() {
  const btn = $("hunt-run");
  btn.disabled = true;
  $("hunt-error").textContent = "";
  $("hunt-stats").textContent = "running…";
  hunt.error = null;
  hunt.result = null;
  $("hunt-grid").replaceChildren();
  $("hunt-chart").replaceChildren();
  $("hunt-detail").hidden = true;
  try {
    const res = await api("POST", "/v1/hunt", { query: $("hunt-query").value, ...timeRange() });
    showResult(res);
  } catch (err) {
    $("hunt-stats").textContent = "";
    if (err.status === 401) return signedOut();
    $("hunt-error").textContent = err.message;
    if (err.data && err.data.line) {
      hunt.error = { line: err.data.line, col: err.data.col, message: err.message };
    }
  } finally {
    btn.disabled = false;
    paint();
  }
}

function showResult(res) {
  hunt.result = res;
  hunt.order = res.rows.map((_, i) => i);
  hunt.sort = { col: -1, dir: 1 };
  $("hunt-stats").textContent = `${res.rows.length.toLocaleString()} rows${res.truncated ? " (truncated)" : ""} · ` +
    `${res.scanned.toLocaleString()} rows read from the store · ${res.elapsedMs} ms`;
  $("hunt-csv").disabled = $("hunt-json").disabled = false;
  $("hunt-detail").hidden = true;
  drawGrid();
  drawChart($("hunt-chart"), res);
}

// The grid: a sticky header and a body as tall as every row, holding only
// the rows in view.
const ROW_H = 22;
function colWidth(c) {
  return c.type === "dynamic" ? 320 : c.type === "datetime" ? 200 : c.type === "string" ? 220 : 110;
}

function drawGrid() {
  const grid = $("hunt-grid");
  const res = hunt.result;
  const width = res.columns.reduce((w, c) => w + colWidth(c), 0);
  const head = el("div", { class: "head" });
  head.style.width = width + "px";
  res.columns.forEach((c, i) => {
    const arrow = hunt.sort.col === i ? (hunt.sort.dir > 0 ? " ▲" : " ▼") : "";
    const h = el("div", { class: "cell", title: c.type, role: "columnheader", text: c.name + arrow });
    h.style.width = colWidth(c) + "px";
    h.addEventListener("click", () => sortBy(i));
    head.appendChild(h);
  });
  const body = el("div", { class: "body" });
  body.style.height = res.rows.length * ROW_H + "px";
  body.style.width = width + "px";
  grid.replaceChildren(head, body);
  drawRows();
}

function drawRows() {
  const res = hunt.result;
  if (!res) return;
  const grid = $("hunt-grid");
  const body = grid.querySelector(".body");
  const first = Math.max(0, Math.floor(grid.scrollTop / ROW_H) - 10);
  const last = Math.min(res.rows.length, Math.ceil((grid.scrollTop + grid.clientHeight) / ROW_H) + 10);
  const frag = document.createDocumentFragment();
  for (let r = first; r < last; r++) {
    const i = hunt.order[r];
    const row = el("div", { class: "row", role: "row" });
    row.dataset.row = r;
    row.style.top = r * ROW_H + "px";
    res.columns.forEach((c, j) => {
      const v = res.rows[i][j];
      const dyn = v !== null && typeof v === "object";
      const cell = el("div", { class: "cell" + (dyn ? " dyn" : ""), text: cellText(v) });
      cell.style.width = colWidth(c) + "px";
      if (dyn) cell.addEventListener("click", () => expand(c.name, v));
      row.appendChild(cell);
    });
    frag.appendChild(row);
  }
  body.replaceChildren(frag);
}

function cellText(v) {
  if (v === null || v === undefined) return "";
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

function expand(name, v) {
  const d = $("hunt-detail");
  d.textContent = name + " = " + JSON.stringify(v, null, 2);
  d.hidden = false;
}

function sortBy(i) {
  const res = hunt.result;
  hunt.sort = { col: i, dir: hunt.sort.col === i ? -hunt.sort.dir : 1 };
  const dir = hunt.sort.dir;
  const num = ["long", "int", "real"].includes(res.columns[i].type);
  hunt.order.sort((a, b) => {
    const x = res.rows[a][i], y = res.rows[b][i];
    if (x === y) return 0;
    if (x === null) return 1;
    if (y === null) return -1;
    if (num) return (x - y) * dir;
    return cellText(x).localeCompare(cellText(y)) * dir;
  });
  drawGrid();
}

function exportResult(kind) {
  const res = hunt.result;
  let data, type;
  if (kind === "csv") {
    const q = (s) => (/[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s);
    data = [res.columns.map((c) => q(c.name)).join(",")]
      .concat(hunt.order.map((i) => res.rows[i].map((v) => q(cellText(v))).join(","))).join("\r\n") + "\r\n";
    type = "text/csv";
  } else {
    data = JSON.stringify(hunt.order.map((i) => Object.fromEntries(res.columns.map((c, j) => [c.name, res.rows[i][j]]))), null, 2);
    type = "application/json";
  }
  saveBlob(new Blob([data], { type }), "hunt." + kind);
}

function saveBlob(blob, name) {
  const a = el("a", { href: URL.createObjectURL(blob), download: name });
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

pages.hunt = {
  show(hash) {
    if (!hunt.built) buildHunt();
    const q = new URLSearchParams((hash.split("?")[1]) || "").get("q");
    if (q) {
      $("hunt-query").value = q;
      hunt.error = null;
      paint();
      history.replaceState(null, "", "#/hunt");
    }
    if (!hunt.schema) loadHuntData();
  },
};

// Charts, drawn as inline SVG: a time chart (lines), a column or bar
// chart, or a pie, from the chart the server picked (x, y columns and an
// optional series column).
const SVGNS = "http://www.w3.org/2000/svg";
const PALETTE = ["#0969da", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0550ae", "#953800", "#57606a", "#116329"];

function svgEl(tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// seriesOf groups the rows into named series of [x, y] points.
function seriesOf(res, spec) {
  const ix = res.columns.findIndex((c) => c.name === spec.x);
  const iy = spec.y.map((n) => res.columns.findIndex((c) => c.name === n));
  const is = spec.series ? res.columns.findIndex((c) => c.name === spec.series) : -1;
  const out = new Map();
  for (const row of res.rows) {
    iy.forEach((j, k) => {
      const name = is >= 0 ? String(row[is] ?? "") + (iy.length > 1 ? " " + spec.y[k] : "") : spec.y[k];
      if (!out.has(name)) out.set(name, []);
      out.get(name).push([row[ix], Number(row[j]) || 0]);
    });
  }
  return [...out.entries()].slice(0, PALETTE.length);
}

function drawChart(box, res) {
  box.replaceChildren();
  const spec = res.chart;
  if (!spec || !res.rows.length) return;
  const W = Math.max(600, Math.min(box.clientWidth || 1000, 1200)), H = 280;
  const m = { l: 60, r: 180, t: 16, b: 36 };
  const svg = svgEl("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": spec.kind + " of " + spec.y.join(", ") + " by " + spec.x });
  svg.dataset.kind = spec.kind;
  const series = seriesOf(res, spec);
  const pw = W - m.l - m.r, ph = H - m.t - m.b;
  const legend = svgEl("g", { class: "legend" });
  series.forEach(([name], i) => {
    legend.appendChild(svgEl("rect", { x: W - m.r + 16, y: m.t + i * 18, width: 10, height: 10, fill: PALETTE[i] }));
    legend.appendChild(svgEl("text", { x: W - m.r + 32, y: m.t + i * 18 + 9 }, name.length > 22 ? name.slice(0, 21) + "…" : name));
  });
  if (spec.kind === "piechart") {
    const totals = new Map();
    series.forEach(([, pts]) => pts.forEach(([x, y]) => totals.set(String(x), (totals.get(String(x)) || 0) + y)));
    const slices = [...totals.entries()].sort((a, b) => b[1] - a[1]).slice(0, PALETTE.length);
    const sum = slices.reduce((s, [, v]) => s + v, 0) || 1;
    const cx = m.l + ph / 2, cy = m.t + ph / 2, r = ph / 2;
    let a0 = -Math.PI / 2;
    legend.replaceChildren();
    slices.forEach(([name, v], i) => {
      const a1 = a0 + (v / sum) * 2 * Math.PI;
      const large = a1 - a0 > Math.PI ? 1 : 0;
      const d = slices.length === 1
        ? `M ${cx - r} ${cy} a ${r} ${r} 0 1 0 ${2 * r} 0 a ${r} ${r} 0 1 0 ${-2 * r} 0`
        : `M ${cx} ${cy} L ${cx + r * Math.cos(a0)} ${cy + r * Math.sin(a0)} A ${r} ${r} 0 ${large} 1 ${cx + r * Math.cos(a1)} ${cy + r * Math.sin(a1)} Z`;
      const p = svgEl("path", { d, fill: PALETTE[i], stroke: "#fff" });
      p.appendChild(svgEl("title", {}, `${name}: ${v}`));
      svg.appendChild(p);
      legend.appendChild(svgEl("rect", { x: cx + r + 30, y: m.t + i * 18, width: 10, height: 10, fill: PALETTE[i] }));
      legend.appendChild(svgEl("text", { x: cx + r + 46, y: m.t + i * 18 + 9 }, `${name} (${v})`));
      a0 = a1;
    });
    svg.appendChild(legend);
    box.appendChild(svg);
    return;
  }
  const ymax = Math.max(1, ...series.flatMap(([, pts]) => pts.map((p) => p[1])));
  const yTicks = niceTicks(ymax);
  const top = yTicks[yTicks.length - 1];
  const axes = svgEl("g", { class: "axes" });
  if (spec.kind === "barchart") {
    // Horizontal bars: categories down, values across.
    const cats = categories(series);
    const bh = ph / cats.length;
    yTicks.forEach((t) => {
      const x = m.l + (t / top) * pw;
      axes.appendChild(svgEl("line", { x1: x, x2: x, y1: m.t, y2: m.t + ph, stroke: "#eaeef2" }));
      axes.appendChild(svgEl("text", { x, y: H - m.b + 16, "text-anchor": "middle" }, fmtNum(t)));
    });
    cats.forEach((c, ci) => {
      axes.appendChild(svgEl("text", { x: m.l - 4, y: m.t + ci * bh + bh / 2 + 4, "text-anchor": "end" }, c.length > 9 ? c.slice(0, 8) + "…" : c));
      series.forEach(([name, pts], si) => {
        const v = pts.filter((p) => String(p[0]) === c).reduce((s, p) => s + p[1], 0);
        const h = (bh * 0.8) / series.length;
        const r = svgEl("rect", { x: m.l, y: m.t + ci * bh + bh * 0.1 + si * h, width: (v / top) * pw, height: h, fill: PALETTE[si] });
        r.appendChild(svgEl("title", {}, `${name} ${c}: ${v}`));
        svg.appendChild(r);
      });
    });
  } else {
    yTicks.forEach((t) => {
      const y = m.t + ph - (t / top) * ph;
      axes.appendChild(svgEl("line", { x1: m.l, x2: m.l + pw, y1: y, y2: y, stroke: "#eaeef2" }));
      axes.appendChild(svgEl("text", { x: m.l - 6, y: y + 4, "text-anchor": "end" }, fmtNum(t)));
    });
    if (spec.kind === "timechart") {
      const xs = series.flatMap(([, pts]) => pts.map((p) => Date.parse(p[0]))).filter((x) => !isNaN(x));
      const x0 = Math.min(...xs), x1 = Math.max(...xs), span = x1 - x0 || 1;
      const X = (t) => m.l + ((Date.parse(t) - x0) / span) * pw;
      for (let i = 0; i <= 4; i++) {
        const t = x0 + (span * i) / 4;
        axes.appendChild(svgEl("text", { x: m.l + (pw * i) / 4, y: H - m.b + 16, "text-anchor": "middle" }, fmtTime(t, span)));
      }
      series.forEach(([name, pts], si) => {
        const sorted = pts.filter((p) => !isNaN(Date.parse(p[0]))).sort((a, b) => Date.parse(a[0]) - Date.parse(b[0]));
        const d = sorted.map((p) => `${X(p[0]).toFixed(1)},${(m.t + ph - (p[1] / top) * ph).toFixed(1)}`).join(" ");
        const line = svgEl("polyline", { points: d, fill: "none", stroke: PALETTE[si], "stroke-width": 2 });
        line.appendChild(svgEl("title", {}, name));
        svg.appendChild(line);
        sorted.forEach((p) => {
          const c = svgEl("circle", { cx: X(p[0]), cy: m.t + ph - (p[1] / top) * ph, r: 2.5, fill: PALETTE[si] });
          c.appendChild(svgEl("title", {}, `${name} ${p[0]}: ${p[1]}`));
          svg.appendChild(c);
        });
      });
    } else {
      const cats = categories(series);
      const cw = pw / cats.length;
      cats.forEach((c, ci) => {
        if (cats.length <= 24 || ci % Math.ceil(cats.length / 24) === 0) {
          axes.appendChild(svgEl("text", { x: m.l + ci * cw + cw / 2, y: H - m.b + 16, "text-anchor": "middle" }, c.length > 12 ? c.slice(0, 11) + "…" : c));
        }
        series.forEach(([name, pts], si) => {
          const v = pts.filter((p) => String(p[0]) === c).reduce((s, p) => s + p[1], 0);
          const w = (cw * 0.8) / series.length;
          const h = (v / top) * ph;
          const r = svgEl("rect", { x: m.l + ci * cw + cw * 0.1 + si * w, y: m.t + ph - h, width: w, height: h, fill: PALETTE[si] });
          r.appendChild(svgEl("title", {}, `${name} ${c}: ${v}`));
          svg.appendChild(r);
        });
      });
    }
  }
  axes.appendChild(svgEl("line", { x1: m.l, x2: m.l, y1: m.t, y2: m.t + ph, stroke: "#8c959f" }));
  axes.appendChild(svgEl("line", { x1: m.l, x2: m.l + pw, y1: m.t + ph, y2: m.t + ph, stroke: "#8c959f" }));
  svg.prepend(axes);
  svg.appendChild(legend);
  box.appendChild(svg);
}

function categories(series) {
  const seen = new Set();
  series.forEach(([, pts]) => pts.forEach((p) => seen.add(String(p[0]))));
  return [...seen].slice(0, 100);
}

function niceTicks(max) {
  const step0 = max / 4;
  const mag = Math.pow(10, Math.floor(Math.log10(step0)));
  const step = [1, 2, 5, 10].map((f) => f * mag).find((s) => s >= step0);
  const out = [];
  for (let v = 0; v <= max + step * 0.999; v += step) out.push(v);
  return out.length > 1 ? out : [0, max];
}

function fmtNum(v) {
  return Math.abs(v) >= 1000 ? (v / 1000).toFixed(v % 1000 ? 1 : 0) + "k" : String(Math.round(v * 100) / 100);
}

function fmtTime(t, span) {
  const iso = new Date(t).toISOString();
  return span > 2 * 86400000 ? iso.slice(5, 10) : span > 3600000 ? iso.slice(5, 16).replace("T", " ") : iso.slice(11, 19);
}
