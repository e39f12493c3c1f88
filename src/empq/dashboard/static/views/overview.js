// The overview: queue depth by priority band (now and over time), running jobs,
// throughput, average wait and run times, and workers by status.

import { bandColor, drawQueueChart } from "../chart.js";
import { store } from "../store.js";
import { $, fmtDuration, fmtNumber, h, mount } from "../util.js";

function card(id, label, value, sub) {
  return h(`div.card#${id}`, {},
    h("div.card-label", { text: label }),
    h("div.card-value", { text: value }),
    sub ? h("div.card-sub", { text: sub }) : null);
}

export function renderOverview() {
  const s = store.stats;
  const cards = $("#stat-cards");
  if (!s) {
    mount(cards, card("stat-queued", "Queued", "—"), card("stat-running", "Running", "—"),
      card("stat-throughput", "Throughput", "—"), card("stat-wait", "Avg wait", "—"),
      card("stat-run", "Avg run", "—"), card("stat-workers", "Workers", "—"));
  } else {
    const failed = s.byStatus.failed || 0;
    const tp = s.throughput;
    // Averages over zero finished jobs are not zero seconds; show them as unknown.
    const noneDone = tp.completed === 0;
    mount(cards,
      card("stat-queued", "Queued", fmtNumber(s.queued, 0)),
      card("stat-running", "Running", fmtNumber(s.running, 0)),
      card("stat-throughput", "Throughput", tp.perMinute === null ? "—" : `${fmtNumber(tp.perMinute)}/min`,
        tp.completed !== null ? `${tp.completed} done · ${failed} failed` : null),
      card("stat-wait", "Avg wait", noneDone ? "—" : fmtDuration(s.avgWait), "queued → started"),
      card("stat-run", "Avg run", noneDone ? "—" : fmtDuration(s.avgRun), "started → done"),
      card("stat-workers", "Workers", fmtNumber(s.workersTotal, 0),
        Object.entries(s.workersByStatus).filter(([, n]) => n).map(([k, n]) => `${n} ${k}`).join(" · ") || null));
  }
  const names = bandNames();
  drawQueueChart($("#queue-chart"), store.history, names);
  renderBands(names);
  renderStatusCounts();
}

function bandNames() {
  const latest = store.stats && store.stats.bands.length ? store.stats.bands : null;
  if (latest) return latest.map((b) => b.name);
  const seen = [];
  for (const p of store.history) for (const b of p.bands || []) if (!seen.includes(b.name)) seen.push(b.name);
  return seen;
}

function renderBands(names) {
  const box = $("#band-bars");
  const bands = store.stats ? store.stats.bands : [];
  if (!bands.length) {
    mount(box, h("p.muted", { text: store.stats ? "No queue depth by band in the hub's stats." : "" }));
    return;
  }
  const max = Math.max(1, ...bands.map((b) => b.count));
  mount(box, bands.map((b) => h("div.band-row", { dataset: { band: b.name } },
    h("span.band-swatch", { style: `background:${bandColor(names.indexOf(b.name))}` }),
    h("span.band-name", { text: b.name }),
    h("span.band-bar", {}, h("span.band-fill", { style: `width:${(b.count / max) * 100}%;background:${bandColor(names.indexOf(b.name))}` })),
    h("span.band-count", { text: String(b.count) }))));
}

function renderStatusCounts() {
  const box = $("#status-counts");
  if (!store.stats) return;
  mount(box, Object.entries(store.stats.byStatus).map(([k, n]) =>
    h("span.count-pill", {}, h(`span.badge.st-${k}`, { text: k.replace("_", " ") }), ` ${n}`)));
}

export function initOverview() {
  store.on("stats", renderOverview);
  renderOverview();
  // The chart is drawn in pixels: redraw it when its box changes size.
  let width = 0;
  new ResizeObserver((entries) => {
    const w = Math.round(entries[0].contentRect.width);
    if (w !== width) {
      width = w;
      drawQueueChart($("#queue-chart"), store.history, bandNames());
    }
  }).observe($("#queue-chart"));
}
