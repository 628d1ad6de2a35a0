// kdfir console: sign in with an API key (the server answers with a
// session cookie and a CSRF token), then the alert queue, live through
// server-sent events, with triage. It uses only the documented HTTP API.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { csrf: sessionStorage.getItem("kdfir.csrf") || "", scopes: [], key: "", events: null };

async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  if (method !== "GET" && state.csrf) opts.headers["X-CSRF-Token"] = state.csrf;
  const resp = await fetch(path, opts);
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { error: text }; }
  if (!resp.ok) {
    const err = new Error((data && data.error) || resp.statusText);
    err.status = resp.status;
    err.data = data;
    throw err;
  }
  return data;
}

// Pages: a script registers pages[name] = { show(hash) } for #/name
// (hunt.js, evidence.js, rules.js); any other hash shows the alert queue.
const pages = {};

function route() {
  if (!state.csrf) return;
  const name = (location.hash.match(/^#\/([a-z]+)/) || [])[1] || "";
  const page = pages[name];
  $("queue").hidden = Boolean(page);
  document.querySelectorAll("section.page").forEach((s) => { s.hidden = !page || s.id !== name; });
  document.querySelectorAll("nav#pages a").forEach((a) => a.classList.toggle("current", a.hash === "#/" + name || (!page && a.hash === "#/")));
  if (page) page.show(location.hash);
}

function can(scope) {
  return state.scopes.includes("*") || state.scopes.includes(scope);
}

function text(tag, s, cls) {
  const el = document.createElement(tag);
  el.textContent = s;
  if (cls) el.className = cls;
  return el;
}

function entityChip(e) {
  let name = e.name || e.address || "";
  if (e.namespace && (e.type === "pod" || e.type === "container" || e.type === "deployment" || e.type === "service")) {
    name = e.namespace + "/" + name;
  }
  return text("span", e.type + ": " + name, "chip");
}

function row(a, fresh) {
  const tr = document.createElement("tr");
  tr.dataset.id = a.id;
  if (fresh) tr.className = "fresh";
  const sel = document.createElement("input");
  sel.type = "checkbox";
  sel.className = "select";
  sel.setAttribute("aria-label", "select " + a.id);
  const td0 = document.createElement("td");
  td0.appendChild(sel);
  tr.appendChild(td0);
  tr.appendChild(text("td", new Date(a.time).toISOString().replace(".000", "")));
  tr.appendChild(text("td", a.severity, "sev-" + a.severity));
  tr.appendChild(text("td", a.source));
  const title = document.createElement("td");
  title.className = "title";
  const link = text("a", a.title);
  link.href = "#/alerts/" + encodeURIComponent(a.id);
  title.appendChild(link);
  tr.appendChild(title);
  const ents = document.createElement("td");
  (a.entities || []).forEach((e) => ents.appendChild(entityChip(e)));
  tr.appendChild(ents);
  const t = a.triage || { status: "new" };
  tr.appendChild(text("td", t.status + (t.classification ? " (" + t.classification + ")" : ""), "status"));
  tr.appendChild(text("td", t.owner || "", "owner"));
  const act = document.createElement("td");
  if (can("triage") && t.status === "new") {
    const take = text("button", "Take", "take");
    take.addEventListener("click", () => triage(a.id, { owner: state.key }));
    act.appendChild(take);
  }
  tr.appendChild(act);
  return tr;
}

// since is the start of the queue's time filter, or null for any time.
function since() {
  const secs = Number($("f-since").value);
  return secs ? new Date(Date.now() - secs * 1000) : null;
}

function inCluster(a, c) {
  const same = (x) => (x || "").toLowerCase() === c.toLowerCase();
  return same(a.cluster) || (a.entities || []).some((e) => same(e.cluster));
}

// matches is the server's filter (GET /v1/alerts) for an alert that
// arrives live.
function matches(a) {
  const st = $("f-status").value, sev = $("f-severity").value, src = $("f-source").value;
  const cluster = $("f-cluster").value.trim(), rule = $("f-rule").value.trim(), from = since();
  const status = (a.triage && a.triage.status) || "new";
  return (!st || st.split(",").includes(status)) && (!sev || a.severity === sev) && (!src || a.source === src) &&
    (!cluster || inCluster(a, cluster)) && (!rule || a.rule === rule) && (!from || new Date(a.time) >= from);
}

function upsert(a, fresh) {
  const body = $("alerts");
  const old = body.querySelector(`tr[data-id="${CSS.escape(a.id)}"]`);
  if (!matches(a)) {
    if (old) old.remove();
    return;
  }
  const tr = row(a, fresh);
  if (old) old.replaceWith(tr);
  else body.prepend(tr);
}

async function load() {
  const q = new URLSearchParams({ limit: "200" });
  if ($("f-status").value) q.set("status", $("f-status").value);
  if ($("f-severity").value) q.set("severity", $("f-severity").value);
  if ($("f-source").value) q.set("source", $("f-source").value);
  if ($("f-cluster").value.trim()) q.set("cluster", $("f-cluster").value.trim());
  if ($("f-rule").value.trim()) q.set("rule", $("f-rule").value.trim());
  if (since()) q.set("since", since().toISOString());
  try {
    const data = await api("GET", "/v1/alerts?" + q);
    const body = $("alerts");
    body.replaceChildren(...(data.alerts || []).map((a) => row(a, false)));
    $("queue-error").textContent = "";
  } catch (err) {
    if (err.status === 401) return signedOut();
    $("queue-error").textContent = err.message;
  }
}

function live() {
  if (state.events) state.events.close();
  const es = new EventSource("/v1/alerts/events");
  es.addEventListener("open", () => $("live").classList.add("on"));
  es.addEventListener("error", () => $("live").classList.remove("on"));
  const on = (ev) => upsert(JSON.parse(ev.data), true);
  es.addEventListener("alert", on);
  es.addEventListener("triage", on);
  state.events = es;
}

async function triage(id, update) {
  try {
    const a = await api("PATCH", "/v1/alerts/" + encodeURIComponent(id), update);
    upsert(a, false);
  } catch (err) {
    $("queue-error").textContent = err.message;
  }
}

async function bulkClose() {
  const ids = [...document.querySelectorAll("#alerts input.select:checked")].map((c) => c.closest("tr").dataset.id);
  if (!ids.length) return;
  try {
    const data = await api("POST", "/v1/alerts/close", {
      ids, classification: $("bulk-class").value, comment: $("bulk-comment").value,
    });
    (data.alerts || []).forEach((a) => upsert(a, false));
    $("queue-error").textContent = "";
  } catch (err) {
    $("queue-error").textContent = err.message;
  }
}

function signedIn(s) {
  state.csrf = s.csrf;
  state.scopes = s.scopes || [];
  state.key = s.key;
  sessionStorage.setItem("kdfir.csrf", s.csrf);
  sessionStorage.setItem("kdfir.session", JSON.stringify({ key: s.key, scopes: s.scopes }));
  $("who").textContent = "signed in as " + s.key;
  $("signout").hidden = false;
  $("signin").hidden = true;
  $("queue").hidden = false;
  document.querySelectorAll(".triage-only").forEach((el) => { el.hidden = !can("triage"); });
  $("pages").hidden = false;
  load();
  live();
  route();
}

function signedOut() {
  sessionStorage.removeItem("kdfir.csrf");
  sessionStorage.removeItem("kdfir.session");
  if (state.events) state.events.close();
  state.csrf = "";
  $("who").textContent = "";
  $("signout").hidden = true;
  $("signin").hidden = false;
  $("queue").hidden = true;
  $("pages").hidden = true;
  document.querySelectorAll("section.page").forEach((s) => { s.hidden = true; });
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const s = await api("POST", "/v1/session", { key: $("key").value });
      $("key").value = "";
      $("signin-error").textContent = "";
      signedIn(s);
    } catch (err) {
      $("signin-error").textContent = err.message;
    }
  });
  $("signout").addEventListener("click", async () => {
    try { await api("DELETE", "/v1/session"); } finally { signedOut(); }
  });
  ["f-status", "f-severity", "f-source", "f-cluster", "f-rule", "f-since"].forEach((id) => $(id).addEventListener("change", load));
  $("bulk-close").addEventListener("click", bulkClose);
  window.addEventListener("hashchange", route);
  const saved = sessionStorage.getItem("kdfir.session");
  if (saved && state.csrf) {
    const s = JSON.parse(saved);
    signedIn({ key: s.key, scopes: s.scopes, csrf: state.csrf });
  } else {
    // A session the OIDC callback opened (or another tab's): the cookie
    // is there, and GET /v1/session hands this page its CSRF token.
    api("GET", "/v1/session").then(signedIn, () => {});
  }
  api("GET", "/v1/session/providers").then((p) => {
    if (!p.oidc) return;
    $("oidc-signin").textContent = "Sign in with " + p.oidc.name;
    $("oidc-signin").href = p.oidc.login;
    $("oidc").hidden = false;
  }, () => {});
});
