// The dashboard page: one event stream (/api/events) brings the service rows and the log lines;
// lines are kept in a bounded buffer and drawn at most once per animation frame, so a service
// writing thousands of lines a second never freezes the page. No build step, no framework.
"use strict";
// The run's token: from the link (`/?t=…`, then dropped from the address) into this tab's
// sessionStorage, which only this origin (host and port) reads; sent as a header on every call.
// Never a cookie: cookies ignore ports, so every server on 127.0.0.1 would receive it.
const TOKEN = (() => {
  const url = new URL(location.href), given = url.searchParams.get("t");
  if (given) {
    sessionStorage.setItem("duplex-token", given);
    url.searchParams.delete("t");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
  return sessionStorage.getItem("duplex-token") || "";
})();
const AUTH = {"X-Duplex-Token": TOKEN};
const KEEP = 5000;   // lines kept in the page
const SHOW = 1500;   // lines drawn (the newest that pass the filter)
const STEP = 250;    // at most this many new lines drawn per frame while following: nobody reads a
                     // flood as it scrolls by; pausing draws the newest SHOW in full
const lines = [];
const colours = {};
let pending = false, paused = false, rows = [];
window.dashboardStats = {renders: [], received: []};  // for benchmarks/dashboard.py

const $ = (id) => document.getElementById(id);
let signedOut = false;
function refused(reply) {  // 401: no token in this tab, or another run's
  if (reply.status !== 401) return false;
  signedOut = true;
  $("conn").textContent = "not signed in: open the link `inv dashboard` prints";
  $("conn").classList.add("out");
  return true;
}

function colour(service) {
  if (!(service in colours)) colours[service] = Object.keys(colours).length % 8;
  return colours[service];
}
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid);
  return e;
}
function bytes(n) {
  if (n === null || n === undefined) return "";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}
function duration(s) {
  if (s === null || s === undefined) return "";
  if (s < 60) return `${Math.floor(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${Math.floor(s % 60)}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor(s % 3600 / 60)}m`;
}
function healthStrip(samples) {  // a tiny SVG strip: one bar per health sample, green or red
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", "90"); svg.setAttribute("height", "12"); svg.setAttribute("class", "hist");
  samples.slice(-30).forEach(([, ok], i) => {
    const r = document.createElementNS(ns, "rect");
    r.setAttribute("x", i * 3); r.setAttribute("y", 0); r.setAttribute("width", 2); r.setAttribute("height", 12);
    r.setAttribute("fill", ok ? "#2f9e44" : "#e03131");
    svg.append(r);
  });
  return svg;
}

async function act(name, action) {
  $("message").textContent = `${action} ${name}…`;
  try {
    const reply = await fetch(`/api/services/${encodeURIComponent(name)}/${action}`,
                              {method: "POST", headers: AUTH, credentials: "omit"});
    const body = await reply.json();
    $("message").textContent = body.message || body.error || reply.statusText;
  } catch (e) { $("message").textContent = `${action} ${name} failed: ${e}`; }
}

function drawServices() {
  const body = document.querySelector("#services tbody");
  body.replaceChildren(...rows.map((r) => {
    if (r.state === "left out")
      return el("tr", {"data-service": r.name}, el("td", {}, r.name), el("td", {}),
                el("td", {}, el("span", {class: "state left"}, "left out")), el("td", {colspan: "12"}, r.why));
    const gpu = r.gpu ? (r.gpu.placement || (r.gpu.devices.length ? `GPU ${r.gpu.devices.join(",")}` : "any GPU")) : "";
    const gmem = (r.gpu_memory || []).map((g) => `GPU ${g.gpu}: ${bytes(g.used)}`).join(", ");
    const sessions = r.sessions ? `sessions ${r.sessions.active}${r.sessions.slots !== null ? `/${r.sessions.slots}` : ""}` : "";
    const phase = [r.phase ? `${r.phase.status}${r.phase.load_s !== undefined && r.phase.load_s !== null ? ` (loaded in ${r.phase.load_s}s)` : ""}` : "",
                   sessions].filter((t) => t).join(" · ");
    const reload = r.last_reload ? `${r.reloads} (last ${r.last_reload.seconds.toFixed(3)}s)` : (r.warm ? "0" : "");
    const running = ["healthy", "starting", "unhealthy"].includes(r.state);
    return el("tr", {"data-service": r.name, "data-state": r.state},
      el("td", {class: "name"}, r.name), el("td", {}, r.mode || ""),
      el("td", {}, el("span", {class: `state ${r.state}`}, r.state)),
      el("td", {}, healthStrip(r.health || [])),
      el("td", {class: "urls"}, ...(r.urls || []).map((u) => el("a", {href: u, target: "_blank", rel: "noopener"}, u))),
      el("td", {class: "ident"}, r.id || ""), el("td", {}, duration(r.uptime)),
      el("td", {class: "restarts"}, String(r.restarts ?? "")),
      el("td", {}, r.cpu === null || r.cpu === undefined ? "" : `${r.cpu}%`),
      el("td", {}, bytes(r.memory)), el("td", {class: "gpu"}, gpu), el("td", {class: "gpu-memory"}, gmem),
      el("td", {class: "phase"}, phase), el("td", {class: "reloads"}, reload),
      el("td", {},
        el("button", {type: "button", class: "restart", onclick: () => act(r.name, "restart")}, "restart"),
        ...(r.warm && running ? [
          el("button", {type: "button", class: "reload-code", title: "re-import the app in place, models kept",
                        onclick: () => act(r.name, "reload-code")}, "reload code"),
          el("button", {type: "button", class: "reload-model", title: "a fresh server process: the preload loads the models again",
                        onclick: () => act(r.name, "reload-model")}, "reload model")] : []),
        running ? el("button", {type: "button", class: "stop", onclick: () => act(r.name, "stop")}, "stop")
                : el("button", {type: "button", class: "start", onclick: () => act(r.name, "start")}, "start")));
  }));
  const select = $("service");
  for (const r of rows) if (r.state !== "left out" && ![...select.options].some((o) => o.value === r.name))
    select.append(el("option", {value: r.name}, r.name));
}

function chart(title, points, series, unit) {  // a plain SVG line chart, no library
  const ns = "http://www.w3.org/2000/svg", w = 260, h = 70, pad = 2;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", w); svg.setAttribute("height", h); svg.setAttribute("class", "chart");
  const values = points.flatMap((p) => series.map(([i]) => p[i])).filter((v) => v !== null);
  const top = Math.max(...values, 1e-9), t0 = points.length ? points[0][0] : 0;
  const span = Math.max(1, (points.length ? points[points.length - 1][0] : 1) - t0);
  for (const [i, colourName] of series) {
    const path = points.filter((p) => p[i] !== null)
      .map((p) => `${pad + (p[0] - t0) / span * (w - 2 * pad)},${h - pad - p[i] / top * (h - 2 * pad)}`);
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", path.join(" ")); line.setAttribute("fill", "none");
    line.setAttribute("stroke", colourName); line.setAttribute("stroke-width", "1.5");
    svg.append(line);
  }
  const last = points.length ? points[points.length - 1] : null;
  const now = last ? series.map(([i]) => last[i] === null ? "–" : `${+last[i].toFixed(3)}${unit}`).join(" / ") : "";
  return el("figure", {}, el("figcaption", {}, `${title} ${now}`), svg);
}

function drawCharts() {
  const box = $("charts");
  box.replaceChildren(...rows.filter((r) => r.metrics && r.metrics.length).map((r) =>
    el("div", {class: "charts", "data-service": r.name}, el("h3", {}, `${r.name} metrics (last ${duration(
      r.metrics[r.metrics.length - 1][0] - r.metrics[0][0])})`),
      chart("requests/s", r.metrics, [[1, "#1c7ed6"]], ""),
      chart("latency p50 / p95", r.metrics, [[2, "#2f9e44"], [3, "#e8590c"]], "s"),
      chart("real-time factor", r.metrics, [[4, "#7048e8"]], ""))));
}

// A regex is first run by the dashboard over its kept lines, in bounded time: the page applies it
// only once the dashboard found it sound, so a pattern that is no regex or that backtracks
// catastrophically is refused with the reason by the filter box and never freezes this tab either.
let verdict = {key: "", ok: true}, checkTimer = null;
function filterKey() { return `${$("regex").checked}|${$("filter").value}`; }
function sayFilter(text) {
  $("filter-error").textContent = text; $("filter-error").hidden = !text;
  $("filter").classList.toggle("bad", Boolean(text));
}
async function checkFilter() {
  const key = filterKey(), q = $("filter").value;
  if (!$("regex").checked || !q) { verdict = {key, ok: true}; sayFilter(""); return; }
  let said = "";
  try {
    const reply = await fetch(`/api/logs?limit=1&q=${encodeURIComponent(q)}&regex=1`, {headers: AUTH, credentials: "omit"});
    if (!reply.ok) { const body = await reply.json(); said = body.fix ? `${body.error}: ${body.fix}` : body.error; }
  } catch (e) { said = `the dashboard could not check the pattern: ${e}`; }
  if (key !== filterKey()) return;  // typed on meanwhile: that check decides
  verdict = {key, ok: !said};
  sayFilter(said);
  full = true; schedule();
}
function matcher() {
  const q = $("filter").value;
  if (!q) return () => true;
  if ($("regex").checked) {
    if (verdict.key !== filterKey() || !verdict.ok) return () => true;  // not checked yet, or refused
    try { const re = new RegExp(q, "i"); return (t) => re.test(t); }
    catch (e) { sayFilter(`not a regular expression in this browser: ${e.message}`); return () => true; }
  }
  const needle = q.toLowerCase();
  return (t) => t.toLowerCase().includes(needle);
}

function lineElement(l, service) {
  const line = el("div", {class: l.level ? `l-${l.level}` : "", "data-seq": l.seq});
  if (!service) line.append(el("span", {class: `svc c${colour(l.service)}`}, `${l.service} | `));
  line.append(l.text);
  return line;
}

// Drawn incrementally: new lines are appended and the oldest removed, so an update costs what
// arrived since the last frame, not the whole window; a filter change redraws it all once.
let full = true, drawnSeq = 0;
function drawLogs() {
  pending = false;
  if (paused) return;
  const began = performance.now();
  const service = $("service").value, match = matcher();
  const box = $("logs");
  const wanted = (l) => (!service || l.service === service) && match(l.text);
  const fresh = [];
  for (let i = lines.length - 1; i >= 0 && fresh.length < SHOW; i--) {
    const l = lines[i];
    if (!full && l.seq <= drawnSeq) break;
    if (wanted(l)) fresh.push(l);
  }
  fresh.reverse();
  const frag = document.createDocumentFragment();
  if (!full && fresh.length > STEP) {
    frag.append(el("div", {class: "skipped"}, `… ${fresh.length - STEP} lines not drawn while following (pause shows them)`));
    fresh.splice(0, fresh.length - STEP);
  }
  for (const l of fresh) frag.append(lineElement(l, service));
  if (full) box.replaceChildren(frag); else box.append(frag);
  while (box.childElementCount > SHOW) box.firstElementChild.remove();
  full = false;
  if (lines.length) drawnSeq = lines[lines.length - 1].seq;
  if ($("follow").checked) box.scrollTop = box.scrollHeight;
  $("counts").textContent = `${box.childElementCount} shown of ${lines.length} kept`;
  const stats = window.dashboardStats;
  stats.renders.push(performance.now() - began);
  if (stats.renders.length > 1000) stats.renders.splice(0, 500);
}
function schedule() { if (!pending) { pending = true; requestAnimationFrame(drawLogs); } }

const handlers = {
  services(data) { rows = JSON.parse(data); drawServices(); drawCharts(); },
  log(data) {
    const batch = JSON.parse(data), now = Date.now();
    for (const l of batch) lines.push(l);
    if (lines.length > KEEP) lines.splice(0, lines.length - KEEP);
    const got = window.dashboardStats.received;
    got.push([now, batch.length, batch[batch.length - 1].text]);
    if (got.length > 2000) got.splice(0, 1000);
    schedule();
  },
};
function dispatch(block) {  // one server-sent event: `event:` and `data:` lines (the SSE format)
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const at = line.indexOf(":"), field = at < 0 ? line : line.slice(0, at);
    const value = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
    if (field === "event") name = value; else if (field === "data") data.push(value);
  }
  if (handlers[name]) handlers[name](data.join("\n"));
}
// The event stream, read with fetch rather than EventSource, which cannot send a header.
async function connect() {
  while (!signedOut) {
    try {
      const reply = await fetch("/api/events", {headers: AUTH, credentials: "omit", cache: "no-store"});
      if (refused(reply)) return;
      if (!reply.ok) throw new Error(reply.statusText);
      $("conn").textContent = "live";
      const reader = reply.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buf += value;
        for (let at = buf.indexOf("\n\n"); at >= 0; at = buf.indexOf("\n\n")) {
          const block = buf.slice(0, at);
          buf = buf.slice(at + 2);
          dispatch(block);
        }
      }
    } catch (e) { /* the dashboard restarted or the network dropped: try again */ }
    $("conn").textContent = "reconnecting…";
    await new Promise((r) => setTimeout(r, 1000));
  }
}
// The project's latest `inv eval` report: a link with when it was made and its headline figures,
// nothing when there is none. The report needs the token too, so the link's click fetches it with
// the header and opens what came in a new tab (a plain link cannot carry the token).
function percent(x) { return x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)} %`; }
function drawEval(e) {
  const box = $("eval");
  box.hidden = !e;
  if (!e) { box.replaceChildren(); return; }
  const figures = Object.entries(e.services || {}).map(([name, s]) => s.wer
    ? `${name} WER ${Object.entries(s.wer).map(([mode, w]) => `${percent(w)} ${mode}`).join(" / ")}`
    : `${name} BLEU ${s.bleu ?? "–"}, chrF ${s.chrf ?? "–"}`);
  box.replaceChildren(
    el("a", {id: "eval-link", href: "/api/eval.html", title: "the latest `inv eval` report", onclick: openEval},
       "evaluation report"),
    ` (${e.made || "?"}${e.commit ? `, ${e.commit}` : ""})${figures.length ? ": " : ""}${figures.join("; ")}`,
    e.breaches ? el("span", {class: "breaches"}, ` · ${e.breaches} over the baseline's budget`) : null);
}
async function openEval(event) {
  event.preventDefault();
  try {
    const reply = await fetch("/api/eval.html", {headers: AUTH, credentials: "omit"});
    if (refused(reply)) return;
    if (!reply.ok) { $("message").textContent = `evaluation report: ${(await reply.json()).error}`; return; }
    const href = URL.createObjectURL(new Blob([await reply.arrayBuffer()], {type: "text/html"}));
    window.open(href, "_blank");
    setTimeout(() => URL.revokeObjectURL(href), 60000);
  } catch (e) { $("message").textContent = `evaluation report: ${e}`; }
}
// the stack's name and the evaluation report's link: again every 5 s (`inv eval` may run meanwhile)
async function title() {
  try {
    const reply = await fetch("/api/services", {headers: AUTH, credentials: "omit"});
    if (refused(reply)) return;
    const body = await reply.json();
    $("stack").textContent = body.stack || "";
    document.title = `${body.stack} · duplex dashboard`;
    drawEval(body.eval);
  } catch (e) { /* the event stream says whether the dashboard answers */ }
  setTimeout(title, 5000);
}
function downloadQuery() {
  const s = $("service").value;
  return `/api/logs?limit=100000&download=1${s ? `&service=${encodeURIComponent(s)}` : ""}` +
    `&q=${encodeURIComponent($("filter").value)}${$("regex").checked ? "&regex=1" : ""}`;
}
// A download fetched with the header, then handed to the browser as a file (a plain link cannot
// carry the token).
$("download").addEventListener("click", async () => {
  if (!verdict.ok && verdict.key === filterKey()) { $("filter").focus(); return; }  // a refused pattern: its reason shows
  try {
    const reply = await fetch(downloadQuery(), {headers: AUTH, credentials: "omit"});
    if (refused(reply)) return;
    if (!reply.ok) { $("message").textContent = `download failed: ${(await reply.json()).error}`; return; }
    const href = URL.createObjectURL(await reply.blob());
    const a = el("a", {href, download: `${$("service").value || "all"}.log`});
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(href), 60000);
  } catch (e) { $("message").textContent = `download failed: ${e}`; }
});

for (const id of ["service", "filter", "regex"]) $(id).addEventListener("input", () => {
  full = true;
  clearTimeout(checkTimer);
  checkTimer = setTimeout(checkFilter, 250);
  schedule();
});
$("pause").addEventListener("click", () => {
  if (!paused) { full = true; drawLogs(); }  // the newest lines in full, then hold still
  paused = !paused; $("pause").textContent = paused ? "resume" : "pause";
  if (!paused) { full = true; schedule(); }
});
// recent requests, when the dashboard receives the services' traces itself
async function pollTraces() {
  try {
    const reply = await fetch("/api/traces?limit=30", {headers: AUTH, credentials: "omit"});
    if (refused(reply)) return;
    const body = await reply.json();
    $("traces-panel").hidden = !body.receiving;
    document.querySelector("#traces tbody").replaceChildren(...body.traces.slice(0, 30).map((t) => {
      const spans = el("div", {class: "spans"});
      for (const s of t.spans) {
        const left = t.ms ? (s.start - t.start) * 1000 / t.ms * 100 : 0, width = t.ms ? Math.max(0.5, s.ms / t.ms * 100) : 100;
        spans.append(el("div", {class: `span${s.error ? " error" : ""}`, title: `${s.service}: ${s.name} ${s.ms} ms`},
          el("span", {class: "bar", style: `margin-left:${left.toFixed(1)}%;width:${width.toFixed(1)}%`}),
          `${s.service}: ${s.name} (${s.ms} ms)`));
      }
      if (t.dropped) spans.append(el("div", {class: "dropped"}, `… ${t.dropped} older spans dropped (the dashboard keeps the newest per trace)`));
      return el("tr", {"data-trace": t.trace, class: t.error ? "error" : ""}, el("td", {}, `${t.service}: ${t.name}`),
                el("td", {class: "services"}, t.services.join(" → ")), el("td", {}, `${t.ms} ms`), el("td", {}, spans));
    }));
  } catch (e) { /* the next poll tries again */ }
  setTimeout(pollTraces, 2000);
}
if (!TOKEN) refused({status: 401});
else { title(); connect(); pollTraces(); }
