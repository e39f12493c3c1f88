// Workers: status, capabilities, current jobs, heartbeat age and connector health.
// Connected workers are listed live; ones that left move to "recently seen".

import { api } from "../api.js";
import { store } from "../store.js";
import { $, fmtAge, h, mount, shortId, toMs } from "../util.js";
import { toast } from "./toast.js";

let openJob = () => {};

function list(value) {
  if (value === "all") return "all";
  return Array.isArray(value) && value.length ? value.join(", ") : "—";
}

function capabilityLines(caps = {}) {
  const hw = caps.hardware || {};
  const models = Object.entries(caps.models || {}).map(([svc, names]) => `${svc}: ${(names || []).join(", ")}`);
  const perf = caps.performance || {};
  const loc = caps.location || {};
  const access = caps.customer_access || {};
  return [
    ["services", list(caps.services)],
    ["components", list(caps.components)],
    ["workflows", list(caps.workflows)],
    ["models", models.length ? models.join("; ") : "—"],
    ["hardware", [hw.gpu_model, hw.gpu_memory_gb ? `${hw.gpu_memory_gb} GB GPU` : null,
      hw.cpu_cores ? `${hw.cpu_cores} CPU` : null, hw.ram_gb ? `${hw.ram_gb} GB RAM` : null].filter(Boolean).join(" · ") || "—"],
    ["slots", String(perf.concurrent_jobs ?? 1)],
    ["isolation", `${access.isolation || "none"}${access.allowed_customers ? ` (only ${access.allowed_customers.join(", ")})` : ""}`],
    ["region", [loc.region, ...(loc.compliance || [])].filter(Boolean).join(" · ") || "—"],
    ["cost", (caps.cost && caps.cost.tier) || "—"],
  ];
}

/** Connector health from `connector_status`: {name: "ok" | {status|healthy, ...}}. */
function connectorHealth(status) {
  if (!status || typeof status !== "object" || !Object.keys(status).length) {
    return h("span.muted", { text: "not reported" });
  }
  return Object.entries(status).map(([name, v]) => {
    let state = v;
    let detail = "";
    if (v && typeof v === "object") {
      state = v.status ?? v.state ?? (v.healthy === undefined ? "unknown" : v.healthy ? "healthy" : "unhealthy");
      detail = v.error || v.message || v.detail || "";
    } else if (typeof v === "boolean") {
      state = v ? "healthy" : "unhealthy";
    }
    const good = ["ok", "healthy", "ready", "connected", "idle", "active", "up"].includes(String(state).toLowerCase());
    const since = !good && v && typeof v === "object" && v.since ? ` since ${new Date(v.since).toLocaleTimeString()}` : "";
    return h(`span.health.${good ? "good" : "bad"}`, { title: detail || String(state) }, `${name}: ${state}${since}`);
  });
}

function heartbeatOf(w) {
  return w.last_heartbeat ?? w.last_seen ?? w.registered_at ?? null;
}

/** Drain: the worker finishes what it runs and takes no more (POST .../drain). */
function drainButton(w) {
  const button = h("button.btn.small.secondary", { type: "button", dataset: { action: "drain", drain: w.worker_id }, text: "Drain" });
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const record = await api.drainWorker(w.worker_id);
      toast(`Draining ${w.worker_id}: it finishes its jobs and takes no more`, "ok");
      if (record && record.worker_id) store.mergeWorker(record);
    } catch (err) {
      toast(`Could not drain ${w.worker_id}: ${err.message}`, "error");
      button.disabled = false;
    }
  });
  return button;
}

function workerCard(w, live) {
  const jobs = w.current_jobs || [];
  const canDrain = live && !["draining", "offline"].includes(w.status);
  return h(`article.worker${live ? "" : ".gone"}`, { dataset: { workerId: w.worker_id, status: w.status || "" } },
    h("header.worker-head", {},
      h("strong.worker-id", { text: w.worker_id }),
      h(`span.badge.ws-${w.status || "unknown"}`, { text: w.status || "unknown" }),
      canDrain ? drainButton(w) : null),
    h("div.worker-meta", {},
      h("span", {}, "heartbeat ", h("span.hb-age", { dataset: { since: toMs(heartbeatOf(w)) ?? "" }, text: fmtAge(heartbeatOf(w)) })),
      h("span", { text: `${w.jobs_completed ?? 0} done · ${w.jobs_failed ?? 0} failed` }),
      live ? null : h("span", { text: w.reason ? `left: ${w.reason}` : "disconnected" })),
    h("div.worker-jobs", {}, "current jobs: ",
      jobs.length ? jobs.map((id) => h("a.job-link", { href: `#job/${id}`, onclick: (e) => { e.preventDefault(); openJob(id); }, text: shortId(id) })) : h("span.muted", { text: "none" })),
    h("div.worker-connectors", {}, "connectors: ", connectorHealth(w.connector_status)),
    h("details.caps", {}, h("summary", { text: "capabilities" }),
      h("dl", {}, capabilityLines(w.capabilities).map(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })]))));
}

export function renderWorkers() {
  const live = [...store.workers.values()].sort((a, b) => a.worker_id.localeCompare(b.worker_id));
  const gone = [...store.offlineWorkers.values()].sort((a, b) => (b.gone_at || 0) - (a.gone_at || 0)).slice(0, 10);
  $("#worker-count").textContent = String(live.length);
  mount($("#workers-live"), live.length ? live.map((w) => workerCard(w, true)) : h("p.muted.empty", { text: "No workers connected." }));
  const goneBox = $("#workers-gone");
  goneBox.hidden = gone.length === 0;
  mount($("#workers-gone-list"), gone.map((w) => workerCard(w, false)));
}

/** Refresh heartbeat ages every second without re-rendering the cards. */
function tickAges() {
  const now = Date.now();
  for (const node of document.querySelectorAll(".hb-age")) {
    const since = Number(node.dataset.since);
    node.textContent = since ? fmtAge(since, now) : "—";
    node.classList.toggle("stale", Boolean(since) && now - since > 60000);
  }
}

export function initWorkers(onOpenJob) {
  openJob = onOpenJob;
  store.on("workers", renderWorkers);
  renderWorkers();
  setInterval(tickAges, 1000);
}
