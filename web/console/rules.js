// kdfir console, Rules: the built-in pack and the user's rules (GET
// /v1/rules) with their last run, alert counts and exceptions; "Test on
// the last 24 h" shows the alerts a rule would raise (POST
// /v1/rules/{id}/test), and "Open in Hunt" opens its query.
"use strict";

const rl = { built: false, data: null };

function buildRules() {
  $("rules").append(
    el("h2", { text: "Rules" }),
    el("div", { class: "toolbar" },
      el("label", {}, "Show ", el("select", { id: "rules-filter", "aria-label": "which rules" },
        el("option", { value: "", text: "all" }), el("option", { value: "pack", text: "the pack" }), el("option", { value: "user", text: "my rules" }))),
      el("input", { id: "rules-search", type: "search", placeholder: "filter by id, title or tactic", "aria-label": "filter rules" }),
      el("span", { id: "rules-count", class: "stats" })),
    el("p", { id: "rules-error", class: "error", role: "alert" }),
    el("table", {},
      el("thead", {}, el("tr", {}, ...["Rule", "Severity", "Runs", "From", "Last run", "Alerts (open / total)", "Exceptions", ""].map((h) => el("th", { text: h })))),
      el("tbody", { id: "rules-list" })));
  $("rules-filter").addEventListener("change", renderRules);
  $("rules-search").addEventListener("input", renderRules);
  rl.built = true;
}

async function loadRules() {
  try {
    rl.data = await api("GET", "/v1/rules");
    $("rules-error").textContent = "";
    renderRules();
  } catch (err) {
    if (err.status === 401) return signedOut();
    $("rules-error").textContent = err.message;
  }
}

function renderRules() {
  if (!rl.data) return;
  const f = $("rules-filter").value;
  const words = $("rules-search").value.toLowerCase().split(/\s+/).filter(Boolean);
  const rules = rl.data.rules.filter((r) => (!f || (f === "pack") === r.pack) &&
    words.every((w) => [r.id, r.title, ...(r.tactics || []), ...(r.techniques || [])].join(" ").toLowerCase().includes(w)));
  $("rules-count").textContent = `${rules.length} of ${rl.data.rules.length} rules`;
  $("rules-list").replaceChildren(...rules.map(ruleRow));
}

function ruleRow(r) {
  const runs = r.nrt ? "near real time" : r.schedule ? `every ${r.schedule.every} over ${r.schedule.lookback}` : "—";
  const exc = (r.exceptions || []).map((x) => x.name + (x.reason ? ": " + x.reason : "")).join("; ");
  const act = el("td", { class: "actions" });
  const tr = el("tr", {},
    el("td", { class: "rule" }, el("strong", { text: r.id }), el("br"), document.createTextNode(r.title || ""),
      r.disabled ? el("span", { class: "muted", text: " (disabled)" }) : document.createTextNode("")),
    el("td", { text: r.severity, class: "sev-" + r.severity }), el("td", { text: runs }),
    el("td", { text: r.pack ? "pack" : r.file || "user" }),
    el("td", { text: r.lastRun ? r.lastRun.slice(0, 19).replace("T", " ") : "—" }),
    el("td", { text: `${r.alerts.open} / ${r.alerts.total}${r.alerts.capped ? "+" : ""}` }),
    el("td", { class: "wrap", text: exc || "—" }), act);
  tr.dataset.id = r.id;
  if (can("hunt")) {
    const test = el("button", { class: "test", text: "Test on the last 24 h" });
    test.addEventListener("click", () => testRule(r, tr, test));
    act.appendChild(test);
  }
  const open = el("a", { href: "#/hunt?q=" + encodeURIComponent(r.query), text: "Open in Hunt" });
  act.append(" ", open);
  return tr;
}

async function testRule(r, tr, btn) {
  btn.disabled = true;
  let out = tr.nextElementSibling;
  if (!out || !out.classList.contains("test-result")) {
    out = el("tr", { class: "test-result" });
    tr.after(out);
  }
  const cell = el("td", { colspan: "8", text: "running over the last 24 hours…" });
  out.replaceChildren(cell);
  try {
    const res = await api("POST", "/v1/rules/" + encodeURIComponent(r.id) + "/test", {});
    cell.replaceChildren(el("strong", { class: "summary", text: `${res.alerts.length} alert(s) would be raised` }),
      document.createTextNode(`, ${res.excepted.length} row(s) matched an exception, in ${res.elapsedMs} ms (nothing was raised).`));
    const list = el("ul", {});
    res.alerts.slice(0, 20).forEach((a) => {
      const li = el("li", {}, el("span", { class: "sev-" + a.severity, text: a.severity + " " }), document.createTextNode(a.title + " "));
      (a.entities || []).forEach((e) => li.appendChild(entityChip(e)));
      list.appendChild(li);
    });
    res.excepted.slice(0, 10).forEach((x) => list.appendChild(el("li", { class: "muted", text: `excepted by ${x.exception}: ${x.reportId}` })));
    cell.appendChild(list);
  } catch (err) {
    cell.replaceChildren(el("span", { class: "error", text: err.message }));
  } finally {
    btn.disabled = false;
  }
}

pages.rules = {
  show() {
    if (!rl.built) buildRules();
    loadRules();
  },
};
