// Draws every chart on the page: a <div data-chart> holds, in a <script type="application/json">
// child, {"x": [unix seconds...], "series": [{"label": "...", "values": [...]}], "y": "label"}.
// No inline scripts: the pages' CSP allows scripts from this origin only.
(function () {
  "use strict";
  const css = getComputedStyle(document.documentElement);
  const palette = ["--accent", "--warn", "--ok", "--bad"].map((v) => css.getPropertyValue(v).trim());
  const extra = ["#8250df", "#bf3989", "#0a7ea4", "#b35900"];
  function draw(el) {
    const data = JSON.parse(el.querySelector("script[type='application/json']").textContent);
    const width = Math.max(el.clientWidth, 280);
    const axis = { stroke: css.getPropertyValue("--muted").trim(), grid: { stroke: css.getPropertyValue("--line").trim() } };
    const opts = {
      width, height: 220,
      series: [{}].concat(data.series.map((s, i) => ({
        label: s.label, stroke: palette[i] || extra[i % extra.length], width: 2, points: { show: data.x.length < 60 },
      }))),
      axes: [axis, Object.assign({ label: data.y || "" }, axis)],
      // One point alone would be drawn at an axis spanning years: give it a minute each side.
      scales: { x: { time: data.time !== false, range: (u, min, max) => (min === max ? [min - 60, max + 60] : [min, max]) } },
    };
    el.setAttribute("data-drawn", "true");
    new uPlot(opts, [data.x].concat(data.series.map((s) => s.values)), el);
  }
  function all() { document.querySelectorAll("[data-chart]:not([data-drawn])").forEach(draw); }
  document.addEventListener("DOMContentLoaded", all);
  document.addEventListener("htmx:afterSwap", all);
})();

// The labeling page (pages::labeling_queue): leases one item at a time through the API, shows
// its inputs and prediction, and records the label picked with a click, a number key or typed
// text; then the next. S skips (the skipped item returns when its lease runs out).
(function () {
  "use strict";
  const root = document.getElementById("labeler");
  if (!root) return;
  const queue = root.dataset.queue;
  const labels = JSON.parse(root.dataset.labels);
  const api = "/api/v1/labeling/" + encodeURIComponent(queue);
  const $ = (id) => document.getElementById(id);
  let item = null;
  let busy = false;
  let done = 0;

  function text(v) { return v === null || v === undefined ? "–" : typeof v === "object" ? JSON.stringify(v) : String(v); }
  function rows(tbody, entries) {
    tbody.replaceChildren(...entries.map(([k, v]) => {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      const td = document.createElement("td");
      th.textContent = k;
      td.textContent = text(v);
      td.className = "mono";
      tr.append(th, td);
      return tr;
    }));
  }
  async function call(method, path, body) {
    const r = await fetch(api + path, {
      method, credentials: "same-origin",
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    const answer = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(answer.message || r.status + " " + r.statusText);
    return answer;
  }
  async function counts() {
    const q = (await call("GET", "")).queue;
    $("lb-counts").textContent = q.counts.queued + " waiting, " + q.counts.labelled + " labelled";
  }
  async function next() {
    busy = true;
    $("lb-error").textContent = "";
    try {
      item = (await call("GET", "/next")).item;
      if (!item) {
        $("lb-item").hidden = true;
        $("lb-status").textContent = "Nothing waits in this queue." + (done ? " You labelled " + done + "." : "");
      } else {
        const inputs = item.inputs && typeof item.inputs === "object" && !Array.isArray(item.inputs)
          ? Object.entries(item.inputs) : [["inputs", item.inputs]];
        rows($("lb-inputs"), inputs);
        const p = item.prediction;
        rows($("lb-prediction"), p && typeof p === "object" && !Array.isArray(p) ? Object.entries(p) : [["prediction", p]]);
        $("lb-id").textContent = item.item_id;
        $("lb-request").textContent = item.request_id + " row " + item.row;
        $("lb-until").textContent = new Date(item.lease_until_ms).toLocaleTimeString();
        $("lb-item").hidden = false;
        $("lb-status").textContent = "Item " + item.item_id + (done ? " · " + done + " labelled here" : "");
        const typed = $("lb-text");
        if (typed) { typed.value = ""; typed.focus(); }
      }
    } catch (e) {
      $("lb-error").textContent = "Could not lease the next item: " + e.message;
    } finally {
      busy = false;
    }
    // The counts are for the eye: the item shown takes a label while they load.
    counts().catch(() => {});
  }
  async function label(value) {
    if (!item || busy || value === "") return;
    busy = true;
    try {
      await call("POST", "/label", { item_id: item.item_id, lease_token: item.lease_token, label: value });
      done += 1;
    } catch (e) {
      busy = false;
      $("lb-error").textContent = "Label not saved: " + e.message;
      return;
    }
    await next();
  }
  root.querySelectorAll("button[data-label]").forEach((b) => b.addEventListener("click", () => label(b.dataset.label)));
  $("lb-skip").addEventListener("click", () => { if (!busy) next(); });
  $("lb-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const typed = $("lb-text");
    if (typed) label(typed.value.trim());
  });
  document.addEventListener("keydown", (e) => {
    if (e.target instanceof HTMLInputElement || e.ctrlKey || e.metaKey || e.altKey) return;
    const n = Number(e.key);
    if (Number.isInteger(n) && n >= 1 && n <= Math.min(9, labels.length)) { e.preventDefault(); label(labels[n - 1]); }
    else if (e.key === "s" || e.key === "S") { e.preventDefault(); if (!busy) next(); }
  });
  next();
})();
