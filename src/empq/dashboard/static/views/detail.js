// The job detail drawer: every field of the record, its event history, the result
// with previews of image artifacts, and explain (who could run it, and why not).

import { api } from "../api.js";
import { store } from "../store.js";
import { $, ACTIVE_STATUSES, FINAL_STATUSES, fmtTime, h, mount, pretty, progressBar, statusBadge } from "../util.js";
import { actionButton } from "./actions.js";

const IMAGE_RE = /\.(png|jpe?g|webp|gif|bmp|avif)(\?|$)/i;
let currentId = null;
let explainData = null;
let explainError = null;
let lastStatus = null;
const blobUrls = new Map(); // artifact url -> object URL, so redraws do not refetch

function fieldValue(value) {
  if (value === null || value === undefined || value === "") return h("span.muted", { text: "—" });
  if (typeof value === "object") return h("pre.json", { text: pretty(value) });
  return h("span", { text: String(value) });
}

function fieldsTable(job) {
  const keys = Object.keys(job).filter((k) => !["result", "error_details"].includes(k)).sort();
  return h("table.fields", {}, h("tbody", {}, keys.map((k) =>
    h("tr", { dataset: { field: k } }, h("th", { text: k }), h("td", {}, fieldValue(job[k]))))));
}

function artifactUrls(result) {
  if (!result || typeof result !== "object") return [];
  const files = Array.isArray(result.output_files) ? result.output_files : [];
  return files.map((f) => (typeof f === "string" ? f : f && (f.url || f.href))).filter(Boolean);
}

function preview(url) {
  const isImage = IMAGE_RE.test(url);
  const name = decodeURIComponent(url.split("/").pop() || url);
  const link = h("a.artifact-link", { href: url, target: "_blank", rel: "noopener", text: name });
  if (!isImage) return h("div.artifact", {}, link);
  const img = h("img.artifact-img", { alt: name, loading: "lazy" });
  const cached = blobUrls.get(url);
  if (cached) img.src = cached;
  else {
    api.artifactUrl(url).then((blobUrl) => {
      blobUrls.set(url, blobUrl);
      img.src = blobUrl;
    }).catch((err) => img.replaceWith(h("span.muted", { text: `preview failed: ${err.message}` })));
  }
  return h("figure.artifact", {}, img, h("figcaption", {}, link));
}

function resultSection(job) {
  const parts = [];
  if (job.error) parts.push(h("div.error-box", {}, h("strong", { text: "Error: " }), job.error));
  if (job.error_details) parts.push(h("pre.json", { text: pretty(job.error_details) }));
  const urls = artifactUrls(job.result);
  if (urls.length) parts.push(h("div.artifacts", {}, urls.map(preview)));
  if (job.result !== null && job.result !== undefined) parts.push(h("pre.json.result", { text: pretty(job.result) }));
  if (!parts.length) parts.push(h("p.muted", { text: FINAL_STATUSES.has(job.status) ? "No result." : "No result yet." }));
  return parts;
}

function eventsSection(id) {
  const events = store.jobEvents.get(id) || [];
  if (!events.length) return h("p.muted", { text: "No events seen yet." });
  return h("ol.timeline", {}, events.map((e) => h("li", { dataset: { status: e.status || "" } },
    h("time", { text: fmtTime(e.t) }),
    e.status ? statusBadge(e.status) : h("span.badge", { text: e.type }),
    e.progress !== undefined && e.progress !== null && e.type === "job_update" ? h("span.ev-progress", { text: ` ${Math.round(e.progress)}%` }) : null,
    e.message ? h("span.ev-msg", { text: ` ${e.message}` }) : null,
    e.worker_id ? h("span.muted", { text: ` · ${e.worker_id}` }) : null,
    e.will_retry ? h("span.muted", { text: " · will retry" }) : null)));
}

/** "Position 3 · starts in ~12 s" for a queued job (the hub's position and ETA). */
function queueLine(job) {
  if (job.status !== "queued" || job.position === null || job.position === undefined) return null;
  let eta;
  if (typeof job.eta_seconds === "number") eta = job.eta_seconds < 1 ? "starts now" : `starts in ~${Math.round(job.eta_seconds)} s`;
  else eta = `no ETA${job.eta_reason ? ` (${job.eta_reason})` : ""}`;
  return h("p.detail-queue", { text: `Position ${job.position} · ${eta}` });
}

function workerLabel(w) {
  if (typeof w === "string") return w;
  return (w.worker_id || pretty(w)) + (w.warm ? " (models warm)" : "");
}

function explainSection() {
  if (explainError) return h("p.error-box", { text: `explain failed: ${explainError}` });
  if (!explainData) return h("p.muted", { text: "loading…" });
  const ex = explainData;
  const matching = ex.matching_workers || [];
  const rejected = ex.rejected_workers || [];
  return [
    ex.summary ? h("p.explain-summary", { text: ex.summary }) : null,
    h("h4", { text: `Can run it (${matching.length})` }),
    matching.length ? h("ul.explain-ok", {}, matching.map((w) => h("li", { text: workerLabel(w) })))
      : h("p.muted", { text: "No connected worker can run this job." }),
    h("h4", { text: `Cannot run it (${rejected.length})` }),
    rejected.length ? h("ul.explain-no", {}, rejected.map((r) => h("li", {},
      h("strong", { text: r.worker_id }), h("ul", {}, (r.reasons || []).map((why) => h("li", { text: typeof why === "string" ? why : pretty(why) }))))))
      : h("p.muted", { text: "None." }),
  ];
}

function render() {
  if (!currentId) return;
  const job = store.jobs.get(currentId);
  const body = $("#detail-body");
  if (!job) {
    mount(body, h("p.muted", { text: "loading…" }));
    return;
  }
  $("#detail-title").textContent = job.id;
  // Live updates redraw the body; keep the reader where they were.
  const scroller = $("#detail");
  const scrollTop = scroller.scrollTop;
  const canCancel = !FINAL_STATUSES.has(job.status);
  const canRetry = ["failed", "timeout", "cancelled"].includes(job.status);
  mount(body,
    h("div.detail-status", {}, statusBadge(job.status), progressBar(job.status === "completed" ? 100 : job.progress, job.status),
      h("span.detail-actions", {}, canCancel ? actionButton("cancel", job.id) : null, canRetry ? actionButton("retry", job.id) : null)),
    job.message && ACTIVE_STATUSES.has(job.status) ? h("p.detail-msg", { text: job.message }) : null,
    queueLine(job),
    h("section.detail-sec#detail-result", {}, h("h3", { text: "Result" }), resultSection(job)),
    h("section.detail-sec#detail-events", {}, h("h3", { text: "Event history" }), eventsSection(job.id)),
    h("section.detail-sec#detail-explain", {}, h("h3", {}, "Explain ",
      h("button.btn.small.secondary", { type: "button", onclick: () => loadExplain(job.id), text: "refresh" })), explainSection()),
    h("section.detail-sec#detail-fields", {}, h("h3", { text: "Fields" }), fieldsTable(job)));
  scroller.scrollTop = scrollTop;
}

async function loadExplain(id) {
  try {
    explainData = await api.explainJob(id);
    explainError = null;
  } catch (err) {
    explainError = err.message;
  }
  if (id === currentId) render();
}

async function loadJob(id) {
  try {
    const fetchedAt = performance.now();
    store.mergeJob(await api.getJob(id), { quiet: true, fetchedAt });
    lastStatus = store.jobs.get(id).status;
  } catch (err) {
    if (id === currentId) mount($("#detail-body"), h("p.error-box", { text: err.status === 404 ? "No such job." : err.message }));
    return;
  }
  if (id === currentId) render();
}

/** Object URLs hold the image bytes until revoked: free them when the job changes. */
function releasePreviews() {
  for (const url of blobUrls.values()) URL.revokeObjectURL(url);
  blobUrls.clear();
}

export function openDetail(id) {
  if (id !== currentId) releasePreviews();
  currentId = id;
  explainData = null;
  explainError = null;
  lastStatus = null;
  $("#detail-title").textContent = id;
  $("#detail").hidden = false;
  document.body.classList.add("detail-open");
  render();
  loadJob(id);
  loadExplain(id);
}

export function closeDetail() {
  releasePreviews();
  currentId = null;
  $("#detail").hidden = true;
  document.body.classList.remove("detail-open");
}

export function initDetail() {
  $("#detail-close").addEventListener("click", () => {
    if (location.hash.startsWith("#job/")) history.pushState(null, "", location.pathname + location.search);
    closeDetail();
  });
  store.on("job", (id) => {
    if (id !== currentId) return;
    const status = store.jobs.get(id).status;
    // A status change can bring a result, timestamps or a new explain: refetch both.
    if (lastStatus !== null && status !== lastStatus) {
      lastStatus = status;
      loadJob(id);
      loadExplain(id);
    }
    render();
  });
}

export function detailJobId() {
  return currentId;
}
