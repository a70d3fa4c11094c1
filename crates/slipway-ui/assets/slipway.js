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
