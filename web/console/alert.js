// kdfir console, the alert page (#/alerts/ID): the alert, its triage and
// comments, its entities with their response actions, each previewed by
// the server's dry run (the plan of every object that would change) and
// confirmed with a reason; the matching audit events and the user's
// activity around it (KQL, run through POST /v1/hunt when the key may
// hunt, and always openable in Hunt); the actions its playbooks took,
// and held steps to approve or reject. Only the documented HTTP API.
"use strict";

// console: shared by the alert and journal pages.
const consolePages = (() => {
  let config = null;

  // settings is GET /v1/console/config, once per session.
  async function settings() {
    if (!config || config.key !== state.key) config = await api("GET", "/v1/console/config");
    return config;
  }

  function node(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
    }
    kids.flat().forEach((k) => e.appendChild(typeof k === "string" ? document.createTextNode(k) : k));
    return e;
  }

  function fmtValue(v) {
    if (v === null || v === undefined) return "(none)";
    return typeof v === "string" ? v : JSON.stringify(v);
  }

  // planTable lists a dry run's plan: each object, the operation, and
  // each field before and after.
  function planTable(plan, cls) {
    const body = node("tbody");
    (plan || []).forEach((it) => {
      const o = it.object || {};
      const fields = node("ul", { class: "fields" }, (it.fields || []).map((f) =>
        node("li", {}, node("code", { text: f.field }), ": ", node("span", { class: "from", text: fmtValue(f.from) }), " → ",
          node("span", { class: "to", text: fmtValue(f.to) }))));
      body.appendChild(node("tr", { class: "op-" + it.op },
        node("td", { class: "op", text: it.op }),
        node("td", { text: o.kind + " " + (o.namespace ? o.namespace + "/" : "") + o.name }),
        node("td", {}, it.detail ? node("div", { text: it.detail }) : "", fields)));
    });
    return node("table", { class: "plan " + (cls || "") },
      node("thead", {}, node("tr", {}, node("th", { text: "Change" }), node("th", { text: "Object" }), node("th", { text: "How" }))), body);
  }

  function when(t) {
    return t ? new Date(t).toISOString().replace(".000", "") : "";
  }

  // actorKind says who acted: a playbook (playbook:<name>), you, a console
  // user signed in with OIDC (oidc:<user>), a CLI user (<user>@<host>;
  // API key names may not hold "@"), or an API key (its name).
  function actorKind(actor) {
    if (!actor) return "";
    if (actor.startsWith("playbook:")) return "playbook";
    if (actor === state.key) return "you";
    if (actor.startsWith("oidc:")) return "console (OIDC)";
    if (actor.includes("@")) return "CLI";
    return "API key or console";
  }

  return { settings, node, planTable, when, actorKind, fmtValue };
})();

(() => {
  const { settings, node, planTable, when, actorKind } = consolePages;
  const page = { alert: null, config: null, pending: null };

  // What each entity type offers, in the order shown.
  const offers = {
    pod: [["isolate-pod", "Isolate"], ["unisolate-pod", "Release"], ["collect-pod", "Collect"], ["exec-pod", "Run command"]],
    namespace: [["isolate-namespace", "Isolate"], ["unisolate-namespace", "Release"], ["collect-namespace", "Collect"]],
    node: [["cordon-node", "Cordon"], ["cordon-node:drain", "Drain"], ["uncordon-node", "Uncordon"], ["collect-node", "Collect"]],
  };

  function section() {
    return $("alert");
  }

  function error(msg) {
    const p = $("alert-error");
    if (p) p.textContent = msg || "";
  }

  function kqlString(s) {
    return '"' + String(s).replace(/\\/g, "\\\\").replace(/"/g, '\\"') + '"';
  }

  const columns = "stageTimestamp, auditID, verb, Username = tostring(user.username), Resource = tostring(objectRef.resource), " +
    "Subresource = tostring(objectRef.subresource), Namespace = tostring(objectRef.namespace), Name = tostring(objectRef.name), requestURI, Code = toint(responseStatus.code)";

  // queries are the alert's KQL: its audit events (by report id, else by
  // its pod around its time) and its user's activity ±15 minutes.
  function queries(a) {
    const t = new Date(a.time || Date.now());
    const since = new Date(t.getTime() - 15 * 60000).toISOString(), until = new Date(t.getTime() + 15 * 60000).toISOString();
    const out = { since, until };
    if ((a.reportIds || []).length) {
      out.events = "KubeAudit\n| where auditID in (" + a.reportIds.map(kqlString).join(", ") + ")\n| project " + columns + "\n| sort by stageTimestamp asc";
    } else {
      const pod = (a.entities || []).find((e) => e.type === "pod");
      if (pod) {
        out.events = "KubeAudit\n| where objectRef.namespace == " + kqlString(pod.namespace) + " and objectRef.name == " + kqlString(pod.name) +
          "\n| where stageTimestamp between (datetime(" + since + ") .. datetime(" + until + "))\n| project " + columns + "\n| sort by stageTimestamp asc";
      }
    }
    const user = (a.entities || []).find((e) => e.type === "user");
    if (user) {
      out.user = user.name;
      out.timeline = "KubeAudit\n| where tostring(user.username) == " + kqlString(user.name) +
        "\n| where stageTimestamp between (datetime(" + since + ") .. datetime(" + until + "))\n| project " + columns + "\n| sort by stageTimestamp asc";
    }
    return out;
  }

  // huntBlock shows a query, a link to open it in Hunt, and its rows when
  // the key may hunt and POST /v1/hunt answers.
  function huntBlock(id, title, query, q, cfg, mark) {
    const out = node("div", { id, class: "hunt-block" },
      node("h3", { text: title }),
      node("pre", { class: "kql", text: query }),
      node("a", { class: "open-hunt", href: "#/hunt?q=" + encodeURIComponent(query), text: "Open in Hunt" }));
    const rows = node("div", { class: "hunt-rows" });
    out.appendChild(rows);
    if (!cfg.hunt) {
      rows.appendChild(node("p", { class: "muted", text: "This key has no hunt scope: open the query in Hunt with a key that has." }));
      return out;
    }
    rows.appendChild(node("p", { class: "muted", text: "running…" }));
    api("POST", "/v1/hunt", { query, since: q.since, until: q.until, maxRows: 500 }).then((res) => {
      const cols = (res.columns || []).map((c) => c.name);
      const tbody = node("tbody", {}, (res.rows || []).map((r) => {
        const tr = node("tr", {}, r.map((v) => node("td", { text: v === null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v) })));
        const i = cols.indexOf("auditID");
        if (mark && i >= 0 && mark.includes(r[i])) tr.className = "reported";
        return tr;
      }));
      rows.replaceChildren(
        node("p", { class: "muted", text: (res.rows || []).length + " events" }),
        node("table", { class: "events" }, node("thead", {}, node("tr", {}, cols.map((c) => node("th", { text: c })))), tbody));
    }, (err) => {
      rows.replaceChildren(node("p", { class: "muted", text: "Not run here (" + err.message + "): open it in Hunt." }));
    });
    return out;
  }

  function triageBlock(a, cfg) {
    const t = a.triage || { status: "new" };
    const div = node("div", { id: "alert-triage" },
      node("p", {}, "Status ", node("strong", { id: "alert-status", text: t.status + (t.classification ? " (" + t.classification + ")" : "") }),
        t.owner ? " · owner " + t.owner : ""));
    if (cfg.triage) {
      const take = node("button", { id: "alert-take", text: "Take" });
      take.addEventListener("click", () => triage({ owner: state.key, status: "active" }));
      const cls = node("select", { id: "alert-class", "aria-label": "classification" },
        ["true-positive", "benign-positive", "false-positive"].map((c) => node("option", { value: c, text: c.replace("-", " ") })));
      const close = node("button", { id: "alert-close", text: "Close" });
      close.addEventListener("click", () => triage({ status: "closed", classification: cls.value }));
      const comment = node("input", { id: "alert-comment", placeholder: "comment", "aria-label": "comment" });
      const add = node("button", { id: "alert-add-comment", text: "Add comment" });
      add.addEventListener("click", () => comment.value.trim() && triage({ comment: comment.value.trim() }));
      div.appendChild(node("div", { class: "toolbar" }, t.status === "new" ? take : "", cls, close, comment, add));
    }
    div.appendChild(node("ul", { id: "alert-comments", class: "comments" },
      (t.comments || []).map((c) => node("li", {}, node("span", { class: "muted", text: when(c.at) + " " + c.by + ": " }), c.text))));
    return div;
  }

  async function triage(update) {
    try {
      page.alert = await api("PATCH", "/v1/alerts/" + encodeURIComponent(page.alert.id), update);
      $("alert-triage").replaceWith(triageBlock(page.alert, page.config));
      error("");
    } catch (err) {
      error(err.message);
    }
  }

  function entityBlock(a, cfg) {
    const list = node("ul", { id: "alert-entities", class: "entities" });
    (a.entities || []).forEach((e) => {
      const li = node("li", {}, entityChip(e));
      (offers[e.type] || []).forEach(([name, label]) => {
        const action = name.split(":")[0];
        if (!cfg.actions.includes(action)) return;
        const b = node("button", { class: "act", "data-action": name, text: label });
        b.addEventListener("click", () => startAction(e, name, label));
        li.appendChild(b);
      });
      list.appendChild(li);
    });
    return node("div", {}, node("h3", { text: "Entities" }), list);
  }

  function target(e) {
    return { type: e.type, namespace: e.namespace || undefined, name: e.name, cluster: e.cluster || undefined };
  }

  // startAction asks for a command (run command), then previews.
  function startAction(entity, name, label) {
    const [action, variant] = name.split(":");
    const params = variant === "drain" ? { drain: true } : undefined;
    const box = $("alert-preview");
    box.hidden = false;
    if (action === "exec-pod") {
      const cmd = node("input", { id: "exec-command", placeholder: "command, e.g. ps aux", "aria-label": "command" });
      const go = node("button", { id: "exec-preview", text: "Preview" });
      go.addEventListener("click", () => preview(entity, action, label, { command: cmd.value.trim().split(/\s+/).filter(Boolean) }));
      box.replaceChildren(node("h3", { text: label + " in " + entity.namespace + "/" + entity.name }), node("div", { class: "toolbar" }, cmd, go));
      return;
    }
    preview(entity, action, label, params);
  }

  // preview runs the server's dry run and lists its plan; the analyst
  // confirms with a reason.
  async function preview(entity, action, label, params) {
    const box = $("alert-preview");
    box.replaceChildren(node("p", { class: "muted", text: "asking the API server for a dry run…" }));
    const req = { action, target: target(entity), params, dryRun: true };
    let res;
    try {
      res = await api("POST", "/v1/actions", req);
    } catch (err) {
      box.replaceChildren(node("p", { class: "error", id: "preview-error", text: label + ": " + err.message }));
      return;
    }
    const reason = node("input", { id: "confirm-reason", placeholder: "reason (required)", "aria-label": "reason", required: true });
    const confirm = node("button", { id: "confirm-action", class: "danger", text: "Confirm " + label.toLowerCase() });
    const cancel = node("button", { id: "cancel-action", text: "Cancel" });
    cancel.addEventListener("click", () => { box.hidden = true; box.replaceChildren(); });
    confirm.addEventListener("click", async () => {
      if (!reason.value.trim()) { reason.focus(); return; }
      confirm.disabled = true;
      try {
        const done = await api("POST", "/v1/actions", { action, target: target(entity), params, reason: reason.value.trim(), alert: page.alert.id });
        box.replaceChildren(node("p", { id: "action-done", class: "ok", text: label + ": " + done.status + (done.id ? " (action " + done.id + ")" : "") + " — " + (done.message || "") }));
        const out = done.output || {};
        if (action === "exec-pod" && (out.stdout !== undefined || out.stderr !== undefined)) {
          box.append(node("h4", { text: "exit code " + out.exitCode }), node("pre", { id: "exec-output", class: "kql", text: (out.stdout || "") + (out.stderr || "") }));
        }
        loadActions();
      } catch (err) {
        confirm.disabled = false;
        box.appendChild(node("p", { class: "error", text: err.message }));
      }
    });
    const what = res.status === "unchanged" ? node("p", { id: "preview-unchanged", text: "Nothing to change: " + res.message }) :
      planTable(res.plan, "preview");
    box.replaceChildren(
      node("h3", { text: "Preview: " + label + " " + (entity.namespace ? entity.namespace + "/" : "") + entity.name }),
      node("p", { class: "muted", text: res.message || "" }),
      what,
      (res.warnings || []).length ? node("ul", { class: "warnings" }, res.warnings.map((w) => node("li", { text: w }))) : "",
      res.status === "unchanged" ? cancel : node("div", { class: "toolbar" }, reason, confirm, cancel));
  }

  // loadActions lists the journal entries of this alert: what its
  // playbooks did, what the console did from here, and held steps.
  async function loadActions() {
    const div = $("alert-actions");
    if (!div || !page.alert) return;
    let list = [];
    try {
      list = (await api("GET", "/v1/actions?alert=" + encodeURIComponent(page.alert.id))).actions || [];
      // The actions the alert names, journaled before they carried it.
      const missing = (page.alert.actions || []).filter((id) => !list.some((e) => e.id === id));
      list = list.concat(await Promise.all(missing.map((id) => api("GET", "/v1/actions/" + encodeURIComponent(id)).catch(() => null))))
        .filter(Boolean);
    } catch (err) {
      div.replaceChildren(node("p", { class: "error", text: err.message }));
      return;
    }
    const cfg = page.config;
    const rows = list.map((e) => {
      const tr = node("tr", { "data-id": e.id, class: "status-" + e.status },
        node("td", { text: when(e.time) }), node("td", { text: e.action }), node("td", { text: e.target }),
        node("td", { text: e.actor + " (" + actorKind(e.actor) + ")" }), node("td", { class: "status", text: e.status }),
        node("td", { text: e.error || "" }));
      const act = node("td");
      if (e.status === "pending_approval" && cfg.approve && cfg.actions.includes(e.action)) {
        const ok = node("button", { class: "approve", text: "Approve" });
        ok.addEventListener("click", () => decide(e.id, "approve"));
        const no = node("button", { class: "reject", text: "Reject" });
        no.addEventListener("click", () => decide(e.id, "reject"));
        act.append(ok, no);
      }
      tr.appendChild(act);
      return tr;
    });
    div.replaceChildren(list.length ? node("table", { class: "actions" },
      node("thead", {}, node("tr", {}, ["Time", "Action", "Target", "Actor", "Status", "Error", ""].map((h) => node("th", { text: h })))),
      node("tbody", {}, rows)) : node("p", { class: "muted", text: "No actions yet." }));
  }

  async function decide(id, verb) {
    try {
      await api("POST", "/v1/actions/" + encodeURIComponent(id) + "/" + verb, verb === "reject" ? { reason: "rejected in the console" } : undefined);
      error("");
    } catch (err) {
      error(err.message);
    }
    loadActions();
  }

  async function show(hash) {
    const sec = section();
    sec.hidden = false;
    const id = decodeURIComponent((hash.match(/^#\/alerts\/([^?]+)/) || [])[1] || "");
    if (!id) { location.hash = "#/"; return; }
    sec.replaceChildren(node("p", { class: "muted", text: "loading…" }));
    let a;
    try {
      page.config = await settings();
      a = await api("GET", "/v1/alerts/" + encodeURIComponent(id));
    } catch (err) {
      sec.replaceChildren(node("a", { href: "#/", text: "← Alerts" }), node("p", { class: "error", id: "alert-error", text: err.message }));
      return;
    }
    page.alert = a;
    const cfg = page.config;
    const q = queries(a);
    sec.replaceChildren(
      node("a", { href: "#/", text: "← Alerts" }),
      node("h2", { id: "alert-title", text: a.title }),
      node("p", { class: "meta" }, node("span", { class: "sev-" + a.severity, text: a.severity }), " · " + a.source +
        (a.rule ? " · rule " : ""), a.rule ? node("code", { id: "alert-rule", text: a.rule }) : "", " · " + when(a.time) + " · " + a.id),
      a.description ? node("p", { id: "alert-description", text: a.description }) : "",
      node("p", { id: "alert-error", class: "error", role: "alert" }),
      triageBlock(a, cfg),
      entityBlock(a, cfg),
      node("div", { id: "alert-preview", class: "preview", hidden: true }),
      node("h3", { text: "Actions" }),
      node("div", { id: "alert-actions" }),
      node("h3", { text: "Timeline" }),
      node("ul", { id: "alert-timeline", class: "timeline" },
        node("li", {}, when(a.time) + " alert raised" + (a.rule ? " by " + a.rule : "")),
        (a.reportIds || []).map((r) => node("li", {}, "report ", node("code", { text: r })))),
      q.events ? huntBlock("alert-events", "Matching audit events", q.events, q, cfg, a.reportIds) : "",
      q.timeline ? huntBlock("alert-user", "What " + q.user + " did ±15 minutes around it", q.timeline, q, cfg, a.reportIds) : "");
    loadActions();
  }

  pages.alerts = { show };
})();
