// kdfir console, the journal page (#/journal): every action with its
// status, its actor (a playbook, this console's key, another key or a CLI
// user) and its diff; a revert first shows the server's dry run of it,
// what it will restore and what it will leave alone, then runs on
// confirmation. Only the documented HTTP API.
"use strict";

(() => {
  const { settings, node, planTable, when, actorKind } = consolePages;
  let config = null;

  // revertible says whether this key may revert the entry now.
  function revertible(e) {
    if (!config || !config.revert) return false;
    if (e.action === "exec-pod" || e.action.startsWith("collect-")) return false;
    if (e.status === "pending_approval" || e.status === "approved" || e.status === "rejected" || e.status === "pending") return false;
    if (e.revert && e.revert.status === "succeeded") return false;
    return config.revert === "any" || config.actions.includes(e.action);
  }

  function diff(e) {
    const changes = e.changes || [];
    const ul = node("ul", { class: "diff" }, changes.map((c) =>
      node("li", {}, node("span", { class: "op", text: c.op }), " " + objName(c.object) + ": " + (c.detail || ""))));
    if (e.revert) {
      const r = e.revert;
      ul.appendChild(node("li", { class: "reverted" }, "reverted " + when(r.time) + " by " + r.actor + " (" + r.status + ")" +
        ((r.leftAlone || []).length ? "; left alone: " + r.leftAlone.join("; ") : "")));
    }
    return ul;
  }

  function objName(o) {
    return o ? o.kind + " " + (o.namespace ? o.namespace + "/" : "") + o.name : "";
  }

  async function load() {
    const sec = $("journal");
    const body = $("journal-rows");
    try {
      config = await settings();
      const q = new URLSearchParams({ limit: "200" });
      if ($("journal-action").value) q.set("action", $("journal-action").value);
      const list = (await api("GET", "/v1/actions?" + q)).actions || [];
      body.replaceChildren(...list.map(row));
      $("journal-error").textContent = "";
    } catch (err) {
      if (err.status === 401) return;
      $("journal-error").textContent = err.message;
    }
    sec.hidden = false;
  }

  function row(e) {
    const tr = node("tr", { "data-id": e.id, class: "status-" + e.status },
      node("td", { text: when(e.time) }),
      node("td", { text: e.action }),
      node("td", { text: e.target }),
      node("td", {}, e.actor || "", node("div", { class: "muted", text: actorKind(e.actor) })),
      node("td", { class: "status", text: e.status + (e.revert ? ", revert " + e.revert.status : "") }),
      node("td", {}, e.reason || "", e.parent ? node("div", {}, node("a", { href: "#/alerts/" + encodeURIComponent(e.parent), text: "alert " + e.parent })) : ""),
      node("td", {}, diff(e)));
    const act = node("td");
    if (revertible(e)) {
      const b = node("button", { class: "revert", text: "Revert…" });
      b.addEventListener("click", () => previewRevert(e));
      act.appendChild(b);
    }
    tr.appendChild(act);
    return tr;
  }

  // previewRevert shows the revert's dry run: what it restores, and what
  // it leaves alone because someone changed it since.
  async function previewRevert(e) {
    const box = $("journal-preview");
    box.hidden = false;
    box.replaceChildren(node("p", { class: "muted", text: "asking the API server for a dry run of the revert…" }));
    let res;
    try {
      res = await api("POST", "/v1/actions/" + encodeURIComponent(e.id) + "/revert", { dryRun: true });
    } catch (err) {
      box.replaceChildren(node("p", { class: "error", text: "revert " + e.id + ": " + err.message }));
      return;
    }
    const confirm = node("button", { id: "confirm-revert", class: "danger", text: "Confirm revert" });
    const cancel = node("button", { id: "cancel-revert", text: "Cancel" });
    cancel.addEventListener("click", () => { box.hidden = true; box.replaceChildren(); });
    confirm.addEventListener("click", async () => {
      confirm.disabled = true;
      try {
        const done = await api("POST", "/v1/actions/" + encodeURIComponent(e.id) + "/revert");
        box.replaceChildren(node("p", { id: "revert-done", class: "ok", text: "Revert of " + e.id + ": " + done.status + " — " + (done.message || "") }));
        load();
      } catch (err) {
        confirm.disabled = false;
        box.appendChild(node("p", { class: "error", text: err.message }));
      }
    });
    const left = res.leftAlone || [];
    box.replaceChildren(
      node("h3", { text: "Preview: revert " + e.action + " " + e.target + " (" + e.id + ")" }),
      res.status === "already-reverted" ? node("p", { text: res.message }) : "",
      node("h4", { text: "Will restore" }),
      (res.plan || []).length ? planTable(res.plan, "revert-plan") : node("p", { class: "muted", text: "nothing" }),
      node("h4", { text: "Will leave alone" }),
      node("ul", { id: "revert-left-alone" }, left.length ? left.map((l) => node("li", { text: l })) :
        node("li", { class: "muted", text: "nothing: no one changed what this action set since" })),
      res.status === "already-reverted" ? cancel : node("div", { class: "toolbar" }, confirm, cancel));
  }

  function build() {
    const sec = $("journal");
    if ($("journal-rows")) return;
    const filter = node("select", { id: "journal-action", "aria-label": "action" }, node("option", { value: "", text: "every action" }),
      ["isolate-pod", "unisolate-pod", "isolate-namespace", "cordon-node", "collect-pod", "collect-namespace", "collect-node", "exec-pod"]
        .map((a) => node("option", { value: a, text: a })));
    filter.addEventListener("change", load);
    const refresh = node("button", { id: "journal-refresh", text: "Refresh" });
    refresh.addEventListener("click", load);
    sec.append(
      node("h2", { text: "Journal" }),
      node("div", { class: "toolbar" }, filter, refresh),
      node("p", { id: "journal-error", class: "error", role: "alert" }),
      node("div", { id: "journal-preview", class: "preview", hidden: true }),
      node("table", { class: "journal" },
        node("thead", {}, node("tr", {}, ["Time", "Action", "Target", "Actor", "Status", "Reason", "Diff", ""].map((h) => node("th", { text: h })))),
        node("tbody", { id: "journal-rows" })));
  }

  // The header's page links get one to the journal.
  const nav = document.querySelector("nav#pages");
  if (nav && !nav.querySelector('a[href="#/journal"]')) nav.appendChild(node("a", { href: "#/journal", text: "Journal" }));

  pages.journal = {
    show() {
      build();
      load();
    },
  };
})();
