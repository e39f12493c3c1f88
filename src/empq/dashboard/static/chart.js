// A hand-written SVG chart: queued jobs by priority band, stacked over time, with a
// line for running jobs. Redrawn from the store's history on every stats update.

const NS = "http://www.w3.org/2000/svg";
const BAND_COLORS = ["#e5484d", "#f59e0b", "#3b82f6", "#10b981", "#8b5cf6", "#64748b", "#ec4899"];
const PAD = { l: 36, r: 10, t: 10, b: 22 };

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Colour of the i-th band, shared with the band bars beside the chart. */
export function bandColor(i) {
  return BAND_COLORS[i % BAND_COLORS.length];
}

function niceMax(value) {
  if (value <= 4) return 4;
  const pow = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * pow >= value) return m * pow;
  return 10 * pow;
}

/**
 * Draw `history` ([{t, bands: [{name, count}], queued, running}]) into `container`.
 * Bands are stacked in the order of `bandNames` (highest priority on top).
 */
export function drawQueueChart(container, history, bandNames) {
  // Draw in the container's own pixels so text is never stretched.
  const W = Math.max(240, Math.round(container.clientWidth || 640));
  const H = Math.max(120, Math.round(container.clientHeight || 170));
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", class: "chart" });
  const title = svg("title", {}, "Queued jobs by priority band over time");
  root.append(title);
  if (history.length < 1) {
    root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "chart-empty" }, "waiting for stats…"));
    container.replaceChildren(root);
    return;
  }
  const names = bandNames.length ? bandNames : ["queued"];
  const series = history.map((p) => {
    const counts = {};
    if (p.bands && p.bands.length) for (const b of p.bands) counts[b.name] = b.count;
    else counts.queued = p.queued || 0;
    return { t: p.t, counts, running: p.running || 0 };
  });
  // At least a minute wide, ending at the latest point: new data enters on the right.
  const t1 = series[series.length - 1].t;
  const t0 = Math.min(series[0].t, t1 - 60_000);
  const stackTotal = (pt) => names.reduce((a, n) => a + (pt.counts[n] || 0), 0);
  // Job counts are whole: four gridlines at a whole step, so no axis says 2.5 jobs.
  const step = Math.max(1, Math.ceil(niceMax(Math.max(1, ...series.map((pt) => Math.max(stackTotal(pt), pt.running)))) / 4));
  const maxY = step * 4;
  const x = (t) => PAD.l + ((t - t0) / (t1 - t0)) * (W - PAD.l - PAD.r);
  const y = (v) => H - PAD.b - (v / maxY) * (H - PAD.t - PAD.b);

  for (let i = 0; i <= 4; i += 1) {
    const v = step * i;
    root.append(svg("line", { x1: PAD.l, x2: W - PAD.r, y1: y(v), y2: y(v), class: "grid" }));
    root.append(svg("text", { x: PAD.l - 4, y: y(v) + 4, "text-anchor": "end", class: "axis" }, String(v)));
  }
  const spanS = (t1 - t0) / 1000;
  root.append(svg("text", { x: PAD.l, y: H - 6, class: "axis" }, spanS >= 60 ? `-${Math.round(spanS / 60)} min` : `-${Math.round(spanS)} s`));
  root.append(svg("text", { x: W - PAD.r, y: H - 6, "text-anchor": "end", class: "axis" }, "now"));

  // Stack from the lowest band up, so the highest-priority band sits on top.
  const base = series.map(() => 0);
  const order = [...names].reverse();
  order.forEach((name) => {
    const i = names.indexOf(name);
    const tops = series.map((pt, k) => base[k] + (pt.counts[name] || 0));
    const upper = series.map((pt, k) => `${x(pt.t).toFixed(1)},${y(tops[k]).toFixed(1)}`);
    const lower = series.map((pt, k) => `${x(pt.t).toFixed(1)},${y(base[k]).toFixed(1)}`).reverse();
    // One sample has no width in time: show it as a thin bar at "now".
    const xr = W - PAD.r;
    const pts = series.length === 1
      ? [`${xr - 4},${y(tops[0])}`, `${xr},${y(tops[0])}`, `${xr},${y(base[0])}`, `${xr - 4},${y(base[0])}`]
      : [...upper, ...lower];
    root.append(svg("polygon", { points: pts.join(" "), fill: bandColor(i), "fill-opacity": 0.55, stroke: bandColor(i), "stroke-width": 1, "data-band": name }));
    tops.forEach((v, k) => { base[k] = v; });
  });
  const run = series.map((pt) => `${x(pt.t).toFixed(1)},${y(pt.running).toFixed(1)}`);
  if (run.length > 1) root.append(svg("polyline", { points: run.join(" "), class: "running-line" }));
  container.replaceChildren(root);
}
