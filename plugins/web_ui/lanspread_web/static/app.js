// Lanspread's page: plain JS, no build step, nothing from the internet.
// The server pushes messages over Server-Sent Events (see hub.py): the words
// first, then a snapshot, then live changes. Every snapshot replaces what the
// page shows, so a reconnect or a dropped message never leaves a stale bar.
"use strict";

const TOKEN = document.querySelector('meta[name="lanspread-token"]').content;
const $ = (id) => document.getElementById(id);

const model = {
  vocab: null, opNames: {}, me: {}, games: new Map(), order: [], peers: [],
  peersAt: 0, ops: {}, errors: {}, uploads: { count: 0, uploads: null },
  logs: [], failed: null,
};
const cards = new Map(); // game id -> { el, parts, sig }
let cardSeq = 0;
let firstRender = true;

// ------------------------------------------------------------------ words
function plural(n, word) { return n === 1 ? `${n} ${word}` : `${n} ${word}s`; }
const UNITS = ["kB", "MB", "GB", "TB", "PB", "EB"];
function size(n) { // the same as vocabulary.size: SI units, one decimal
  if (n === null || n === undefined) return "-";
  if (n === 1) return "1 byte";
  if (n < 1000) return `${n.toLocaleString("en-US")} bytes`;
  let unit = 1000;
  for (const suffix of UNITS) {
    unit *= 1000;
    if (n < unit || suffix === "EB") {
      return `${(1000 * n / unit).toLocaleString("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 })} ${suffix}`;
    }
  }
}
function duration(s) {
  if (s === null || s === undefined || s < 0) return "-:--:--";
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return `${h}:${String(m).padStart(2, "0")}:${String(r).padStart(2, "0")}`;
}
function peerName(pid) {
  const p = model.peers.find((x) => x.peer_id === pid);
  return (p && p.name) || String(pid).slice(0, 8);
}
function gameName(gid) { const g = model.games.get(gid); return (g && g.name) || gid; }
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

// --------------------------------------------------------------- messages
function handle(msg) {
  switch (msg.type) {
    case "vocabulary": model.vocab = msg.table; model.opNames = msg.ops; break;
    case "snapshot": applySnapshot(msg); break;
    case "op": model.ops[msg.game_id] = msg.op; delete model.errors[msg.game_id]; renderCard(msg.game_id); renderOps(); break;
    case "end":
      delete model.ops[msg.game_id];
      if (msg.error) model.errors[msg.game_id] = msg.error; else delete model.errors[msg.game_id];
      renderCard(msg.game_id); renderOps(); loadUnpackLogs();
      break;
    case "uploads": model.uploads = { count: msg.count, uploads: msg.uploads }; renderUploads(); break;
    case "peers": model.peers = msg.peers; model.peersAt = Date.now(); renderPeers(); break;
    case "logs": model.logs = msg.records; renderLogs(); break;
    case "log": addLog(msg.record); break;
    case "failed": model.failed = msg.error; renderFailed(); break;
  }
}

function applySnapshot(s) {
  model.me = s.me;
  model.games = new Map(s.games.map((g) => [g.id, g]));
  model.order = s.games.map((g) => g.id);
  model.peers = s.peers; model.peersAt = Date.now();
  model.ops = s.ops; model.errors = s.errors; model.uploads = s.uploads; model.failed = s.failed;
  const me = s.me.name ? `${s.me.name} · ${s.me.peer_id.slice(0, 8)}` : s.me.peer_id.slice(0, 8);
  $("me").textContent = `${me} · ${s.me.control}`;
  renderGames(); renderOps(); renderUploads(); renderPeers(); renderFailed();
  if (firstRender) {
    firstRender = false;
    window.lanspreadReadyAt = performance.now();
    document.documentElement.dataset.ready = "1";
    loadUnpackLogs();
  }
}

// ---------------------------------------------------------------- library
function renderGames() {
  const box = $("games");
  for (const [gid, card] of cards) {
    if (!model.games.has(gid)) { card.el.remove(); cards.delete(gid); }
  }
  let previous = null;
  for (const gid of model.order) {
    renderCard(gid);
    const node = cards.get(gid).el;
    const expected = previous ? previous.nextSibling : box.firstChild;
    if (node !== expected) box.insertBefore(node, expected);
    previous = node;
  }
  $("nogames").hidden = model.order.length > 0;
  applyFilter();
}

function makeCard(gid) {
  const n = ++cardSeq;
  const parts = {
    title: el("h3", { id: `game-${n}` }),
    meta: el("div", { class: "meta" }),
    state: el("span", { class: "state" }),
    share: el("span", { class: "share" }),
    holders: el("div", { class: "holders" }),
    progress: el("div", { class: "progress" }),
    bar: el("div", { class: "bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100" }),
    nums: el("div"),
    sources: el("div", { class: "sources" }),
    error: el("p", { class: "error", role: "alert" }),
    actions: el("div", { class: "actions" }),
  };
  parts.bar.append(el("span"));
  parts.progress.append(parts.bar, parts.nums, parts.sources);
  const line = el("div", {}, parts.state, " ", parts.share);
  const card = el("article", { "aria-labelledby": `game-${n}` },
    parts.title, parts.meta, line, parts.holders, parts.progress, parts.error, parts.actions);
  card.dataset.id = gid;
  return { el: card, parts, sig: "" };
}

function renderCard(gid) {
  const g = model.games.get(gid);
  if (!g) return;
  let card = cards.get(gid);
  if (!card) { card = makeCard(gid); cards.set(gid, card); }
  const op = model.ops[gid] || null, err = model.errors[gid] || null;
  const sig = JSON.stringify([g, op && op.kind, err, model.peers.length]);
  if (sig !== card.sig) {
    card.sig = sig;
    fillCard(card.parts, g, op, err);
  }
  fillProgress(card.parts, g, op);
}

function fillCard(p, g, op, err) {
  p.title.textContent = g.name || g.id;
  const version = g.version || g.catalog_version || "-";
  p.meta.textContent = `${g.id} · version ${version} · ${g.words.size}`;
  p.state.textContent = op ? (op.kind === "download" ? "Downloading" : `Busy — ${model.vocab.doing[op.kind] || op.kind}`) : g.words.state;
  p.state.className = "state" + (g.availability === "ready" && !op ? " ready" : "");
  p.share.textContent = g.words.sharing;
  p.share.className = "share" + (g.availability === "ready" ? " on" : g.availability === "local_only" ? " local" : "");
  const holders = (g.peers || []).map(peerName);
  p.holders.textContent = holders.length ? `On ${holders.join(", ")}` : "On no other peer";
  p.error.hidden = !err;
  p.error.textContent = err ? err.text : "";
  p.error.className = err && err.level === "note" ? "note" : "error";
  p.actions.replaceChildren(...actionsFor(g, op).map((a) => actionButton(g, a)));
}

function actionsFor(g, op) {
  if (op) return model.vocab.cancellable.includes(op.kind) ? [{ cmd: "cancel", label: model.vocab.actions.cancel }] : [];
  return g.words.actions;
}

function actionButton(g, action) {
  const b = el("button", { type: "button", text: action.label });
  if (action.cmd === "download" || action.cmd === "install") b.className = "primary";
  if (!TOKEN) b.disabled = true;
  b.addEventListener("click", () => {
    if (["update", "uninstall", "remove-download"].includes(action.cmd)) confirmThen(g, action, b);
    else send(g.id, action.cmd, b);
  });
  return b;
}

function fillProgress(p, g, op) {
  p.progress.hidden = !op;
  if (!op) { p.bar.removeAttribute("aria-valuenow"); return; }
  const name = model.opNames[op.kind] || op.kind;
  p.bar.setAttribute("aria-label", `${name} progress of ${g.name || g.id}`);
  const span = p.bar.firstChild;
  if (op.total > 0) {
    const pct = Math.min(100, Math.floor((100 * op.bytes) / op.total));
    p.bar.setAttribute("aria-valuenow", String(pct));
    p.bar.classList.remove("indeterminate");
    span.style.width = `${pct}%`;
    p.nums.textContent = `${name}: ${pct}% · ${size(op.bytes)} of ${size(op.total)} · ${size(op.rate)}/s · ETA ${duration(op.eta)}`;
  } else {
    p.bar.removeAttribute("aria-valuenow");
    p.bar.classList.add("indeterminate");
    p.nums.textContent = `${name}: starting…`;
  }
  p.sources.textContent = (op.sources || []).length
    ? "From " + op.sources.map((s) => `${s.name} ${size(s.rate)}/s${s.partial ? " (partial)" : ""}`).join(", ")
    : "";
}

function applyFilter() {
  const q = $("filter").value.trim().toLowerCase();
  let shown = 0;
  for (const [gid, card] of cards) {
    const g = model.games.get(gid);
    const hit = !q || (g.name || "").toLowerCase().includes(q) || gid.toLowerCase().includes(q);
    card.el.hidden = !hit;
    if (hit) shown++;
  }
  $("count").textContent = q ? `${shown} of ${plural(cards.size, "game")}` : plural(cards.size, "game");
}

// ---------------------------------------------------------------- actions
async function post(body) {
  const r = await fetch("/api/command", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Lanspread-Token": TOKEN },
    body: JSON.stringify(body),
  });
  if (r.status === 403) return { ok: false, error: (await r.text()).trim() };
  return r.json();
}

async function send(gid, cmd, button) {
  if (button) button.disabled = true;
  try {
    const reply = await post({ cmd, game_id: gid });
    if (!reply.ok) { model.errors[gid] = { level: "error", text: reply.error }; renderCard(gid); }
  } catch (e) {
    model.errors[gid] = { level: "error", text: "The peer did not answer; is it still running?" };
    renderCard(gid);
  } finally {
    if (button) button.disabled = false;
  }
}

async function confirmThen(g, action, button) {
  const dialog = $("confirm");
  let words;
  try {
    const r = await fetch(`/api/games/${encodeURIComponent(g.id)}/deletion?op=${action.cmd}`);
    words = await r.json();
    if (!r.ok) throw new Error(words.error);
  } catch (e) {
    model.errors[g.id] = { level: "error", text: String(e.message || e) };
    renderCard(g.id);
    return;
  }
  $("confirm-title").textContent = `${action.label} ${g.name || g.id}?`;
  $("confirm-text").textContent = words.question;
  const files = [...(words.changes.sample || []), ...(words.changes.changed_sample || [])];
  $("confirm-files").replaceChildren(...files.map((f) => el("li", { text: f })));
  const ok = $("confirm-ok"), cancel = $("confirm-cancel");
  const done = (go) => {
    ok.onclick = cancel.onclick = dialog.oncancel = null;
    dialog.close();
    if (go) send(g.id, action.cmd, button);
  };
  ok.onclick = () => done(true);
  cancel.onclick = () => done(false);
  dialog.oncancel = () => done(false);
  dialog.showModal();
  cancel.focus(); // the safe answer is the default
}

// ------------------------------------------------------- running, uploads, peers
function renderOps() {
  const box = $("ops");
  const ids = Object.keys(model.ops);
  if (!ids.length) { box.replaceChildren(el("p", { class: "muted", text: "Nothing running." })); return; }
  box.replaceChildren(...ids.map((gid) => {
    const op = model.ops[gid];
    const pct = op.total > 0 ? `${Math.floor((100 * op.bytes) / op.total)}%` : "starting";
    return el("p", { text: `${gameName(gid)}: ${model.opNames[op.kind] || op.kind}, ${pct}, ${size(op.rate)}/s` });
  }));
}

function renderUploads() {
  const box = $("uploads"), u = model.uploads;
  if (u.uploads && u.uploads.length) {
    box.replaceChildren(el("ul", {}, ...u.uploads.map((x) =>
      el("li", { text: `${x.name || peerName(x.peer_id)} is downloading ${gameName(x.game_id)}: ${size(x.bytes)} sent, ${size(x.rate)}/s` }))));
  } else if (u.count > 0) {
    box.replaceChildren(el("p", { text: `Serving ${plural(u.count, "transfer")} to other peers.` }));
  } else {
    box.replaceChildren(el("p", { class: "muted", text: "Nobody is downloading from you." }));
  }
}

function renderPeers() {
  const body = $("peers").tBodies[0];
  const since = (Date.now() - model.peersAt) / 1000;
  body.replaceChildren(...model.peers.map((p) => {
    const age = (p.last_seen_s || 0) + since;
    const games = Array.isArray(p.games) ? p.games.length : p.games;
    return el("tr", {}, el("td", { text: p.name || String(p.peer_id).slice(0, 8) }), el("td", { text: p.addr || "?" }),
      el("td", { text: String(games ?? 0) }), el("td", { text: age < 1.5 ? "just now" : `${Math.round(age)}s ago` }));
  }));
  $("nopeers").hidden = model.peers.length > 0;
  $("peers").hidden = model.peers.length === 0;
}

function renderFailed() {
  $("failed").hidden = !model.failed;
  $("failed").textContent = model.failed || "";
}

// ------------------------------------------------------------------- logs
const LEVELS = { DEBUG: 10, INFO: 20, WARNING: 30, ERROR: 40, CRITICAL: 50 };
function logLine(r) {
  const t = new Date(r.t * 1000).toTimeString().slice(0, 8);
  const li = el("li", { class: r.level, text: `${t} ${r.level} ${r.name}: ${r.message}` });
  li.dataset.level = String(LEVELS[r.level] || 0);
  return li;
}
function renderLogs() {
  const list = $("log");
  list.replaceChildren(...model.logs.map(logLine));
  filterLogs();
}
function addLog(r) {
  model.logs.push(r);
  const list = $("log");
  const li = logLine(r);
  li.hidden = Number(li.dataset.level) < Number($("level").value);
  list.append(li);
  while (list.childElementCount > 1000) list.firstChild.remove();
  if ($("follow").checked) list.scrollTop = list.scrollHeight;
}
function filterLogs() {
  const min = Number($("level").value);
  for (const li of $("log").children) li.hidden = Number(li.dataset.level) < min;
  if ($("follow").checked) $("log").scrollTop = $("log").scrollHeight;
}

let unpackTimer = null;
function loadUnpackLogs() {
  clearTimeout(unpackTimer);
  unpackTimer = setTimeout(async () => {
    const r = await fetch("/api/unpack-logs");
    if (!r.ok) return;
    const { logs } = await r.json();
    const box = $("unpack");
    if (!logs.length) { box.replaceChildren(el("p", { class: "muted", text: "None yet." })); return; }
    const open = new Set([...box.querySelectorAll("details[open]")].map((d) => d.dataset.name));
    box.replaceChildren(...logs.map((l) => {
      const pre = el("pre");
      const d = el("details", {}, el("summary", { text: `${l.when} ${l.what}` }), pre);
      d.dataset.name = l.name;
      d.addEventListener("toggle", async () => {
        if (d.open && !pre.textContent) pre.textContent = await (await fetch(`/api/unpack-logs/${encodeURIComponent(l.name)}`)).text();
      });
      if (open.has(l.name)) d.open = true;
      return d;
    }));
  }, 300);
}

// ------------------------------------------------------------------ wiring
function connect() {
  const source = new EventSource("/api/events");
  source.onopen = () => { $("link").textContent = "Live"; $("link").className = "link"; };
  source.onerror = () => { $("link").textContent = "Reconnecting…"; $("link").className = "link down"; };
  source.onmessage = (e) => handle(JSON.parse(e.data));
}

document.addEventListener("DOMContentLoaded", () => {
  $("readonly").hidden = Boolean(TOKEN);
  $("filter").addEventListener("input", applyFilter);
  $("level").addEventListener("change", filterLogs);
  $("copy").addEventListener("click", () => {
    const text = [...$("log").children].filter((li) => !li.hidden).map((li) => li.textContent).join("\n");
    navigator.clipboard.writeText(text).catch(() => {});
  });
  $("connect").addEventListener("submit", async (e) => {
    e.preventDefault();
    const addr = $("peer-addr").value.trim();
    $("connect-error").textContent = "";
    const reply = await post({ cmd: "connect", addr });
    if (!reply.ok) $("connect-error").textContent = reply.error;
    else $("peer-addr").value = "";
  });
  setInterval(renderPeers, 1000); // "last seen" moves on
  connect();
});
