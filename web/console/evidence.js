// kdfir console, Evidence: the collections in the configured destinations
// (GET /v1/evidence), each with its manifest, signature and last
// verification; download an artifact (its SHA-256 checked against the
// manifest in the browser) and re-verify the whole collection on demand.
"use strict";

const ev = { built: false, current: null };

function buildEvidence() {
  $("evidence").append(
    el("h2", { text: "Evidence" }),
    el("div", { class: "toolbar" }, el("button", { id: "evidence-reload", text: "Reload" }), el("span", { id: "evidence-dests", class: "stats" })),
    el("p", { id: "evidence-error", class: "error", role: "alert" }),
    el("table", {},
      el("thead", {}, el("tr", {}, ...["Collected", "Target", "Action", "Cluster", "Destination", "Artifacts", "Signature", "Verified"].map((h) => el("th", { text: h })))),
      el("tbody", { id: "evidence-list" })),
    el("div", { id: "evidence-detail", class: "panel", hidden: "" }));
  $("evidence-reload").addEventListener("click", loadEvidence);
  ev.built = true;
}

function sigText(c) {
  if (c.error) return el("span", { class: "bad", text: "unreadable" });
  const s = c.signature || {};
  if (!s.signatureValid) return el("span", { class: "bad", text: "INVALID" });
  return el("span", { class: s.trusted ? "ok" : "muted", text: s.trusted ? "valid (trusted key)" : "valid (own key only)" });
}

function verifiedText(v) {
  if (!v) return el("span", { class: "muted", text: "not checked" });
  return el("span", { class: v.ok ? "ok" : "bad", text: (v.ok ? "OK" : "FAILED") + " " + v.at.slice(0, 19).replace("T", " ") });
}

function targetText(t) {
  return (t.kind || "") + " " + [t.namespace, t.name].filter(Boolean).join("/");
}

async function loadEvidence() {
  try {
    const data = await api("GET", "/v1/evidence");
    $("evidence-dests").textContent = data.destinations.map((d) => d.name + (d.error ? " (" + d.error + ")" : "")).join(", ") || "no destinations configured";
    $("evidence-list").replaceChildren(...data.collections.map((c) => {
      const tr = el("tr", {},
        el("td", { text: c.started && !c.started.startsWith("0001") ? c.started.slice(0, 19).replace("T", " ") : "" }),
        el("td", { text: targetText(c.target || {}) }),
        el("td", { text: c.action || "" }), el("td", { text: c.cluster || "" }), el("td", { text: c.destination }),
        el("td", { text: String(c.artifacts) + (c.failedArtifacts ? ` (+${c.failedArtifacts} failed)` : "") }),
        el("td", {}, sigText(c)), el("td", { class: "verified" }, verifiedText(c.verification)));
      tr.dataset.id = c.id;
      tr.addEventListener("click", () => openCollection(c.id));
      return tr;
    }));
    $("evidence-error").textContent = "";
  } catch (err) {
    if (err.status === 401) return signedOut();
    $("evidence-error").textContent = err.message;
  }
}

function collectionURL(id) {
  return "/v1/evidence/" + encodeURIComponent(id);
}

async function openCollection(id) {
  document.querySelectorAll("#evidence-list tr").forEach((tr) => tr.classList.toggle("selected", tr.dataset.id === id));
  try {
    const c = await api("GET", collectionURL(id));
    ev.current = c;
    const m = c.manifest || { artifacts: [] };
    const col = m.collector || {};
    const kv = el("dl", { class: "kv" });
    [["id", c.id], ["location", c.location], ["action", (c.action || "") + " " + (c.actionId || "")], ["target", targetText(c.target || {})],
      ["cluster", c.cluster || ""], ["collected by", [col.user, col.host].filter(Boolean).join(" on ")],
      ["started", m.started || ""], ["finished", m.finished || ""], ["signing key", (c.signature && c.signature.key) || m.signingKey || ""]]
      .forEach(([k, v]) => kv.append(el("dt", { text: k }), el("dd", { class: "mono", text: v })));
    const sig = el("dd", {}, sigText(c));
    kv.append(el("dt", { text: "signature" }), sig, el("dt", { text: "verification" }), el("dd", { id: "evidence-verified" }, verifiedText(c.verification)));
    const rows = m.artifacts.map((a) => {
      const act = el("td", {});
      if (!a.error) {
        const b = el("button", { class: "download", text: "Download" });
        b.addEventListener("click", () => download(c.id, a, act));
        act.appendChild(b);
      }
      const tr = el("tr", {}, el("td", { class: "mono wrap", text: a.path }), el("td", { text: a.error ? "—" : String(a.size) }),
        el("td", { class: "mono", title: a.sha256 || "", text: a.error ? "not collected: " + a.error : (a.sha256 || "").slice(0, 16) + "…" }),
        el("td", { class: "wrap", text: a.source || "" }), act);
      tr.dataset.path = a.path;
      return tr;
    });
    const verify = el("button", { id: "evidence-verify", text: "Re-verify now" });
    verify.addEventListener("click", () => reverify(c.id));
    $("evidence-detail").replaceChildren(
      el("h3", { text: "Collection " + c.id }), kv,
      el("div", { class: "toolbar" }, verify, el("span", { id: "evidence-verify-result", class: "stats" })),
      el("ul", { id: "evidence-problems" }),
      el("table", {}, el("thead", {}, el("tr", {}, ...["Artifact", "Bytes", "SHA-256", "Source", ""].map((h) => el("th", { text: h })))), el("tbody", {}, ...rows)));
    $("evidence-detail").hidden = false;
  } catch (err) {
    $("evidence-error").textContent = err.message;
  }
}

async function sha256Hex(buf) {
  const d = await crypto.subtle.digest("SHA-256", buf);
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// download fetches an artifact, checks its SHA-256 against the manifest,
// then saves it.
async function download(id, a, cell) {
  const note = cell.querySelector(".check") || cell.appendChild(el("span", { class: "check" }));
  note.textContent = " checking…";
  try {
    const resp = await fetch(collectionURL(id) + "/artifacts/" + a.path.split("/").map(encodeURIComponent).join("/"), { credentials: "same-origin" });
    if (!resp.ok) throw new Error((await resp.json().catch(() => ({}))).error || resp.statusText);
    const blob = await resp.blob();
    const sum = await sha256Hex(await blob.arrayBuffer());
    const ok = sum === a.sha256;
    note.className = "check " + (ok ? "ok" : "bad");
    note.textContent = ok ? " ✓ SHA-256 matches the manifest" : " ✗ SHA-256 " + sum.slice(0, 16) + "… differs from the manifest";
    saveBlob(blob, a.path.split("/").pop());
  } catch (err) {
    note.className = "check bad";
    note.textContent = " " + err.message;
  }
}

async function reverify(id) {
  const out = $("evidence-verify-result");
  out.textContent = "verifying…";
  try {
    const v = await api("POST", collectionURL(id) + "/verify");
    const r = v.report;
    out.replaceChildren(verifiedText(v), document.createTextNode(` · ${r.checked} artifacts checked, signature ${r.signatureValid ? "valid" : "INVALID"}, ${r.problems.length} problems`));
    $("evidence-verified").replaceChildren(verifiedText(v));
    $("evidence-problems").replaceChildren(...r.problems.map((p) => el("li", { class: "bad", text: `${p.kind}: ${p.path}: ${p.detail}` })));
    const row = document.querySelector(`#evidence-list tr[data-id="${CSS.escape(id)}"] td.verified`);
    if (row) row.replaceChildren(verifiedText(v));
  } catch (err) {
    out.textContent = err.message;
  }
}

pages.evidence = {
  show() {
    if (!ev.built) buildEvidence();
    loadEvidence();
  },
};
