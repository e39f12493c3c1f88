// The jobs table: filters (status, customer, type) applied by the hub's list API and
// again locally to live events, a search by job id or prefix, a live progress bar per
// job, cancel and retry (one by one, or every job shown at once: see bulk.js).

import { store } from "../store.js";
import { $, ACTIVE_STATUSES, FINAL_STATUSES, JOB_STATUSES, fmtTime, h, mount, progressBar, shortId, statusBadge } from "../util.js";
import { api } from "../api.js";
import { actionButton } from "./actions.js";
import { toast } from "./toast.js";

const MAX_ROWS = 250; // a monitor, not an export: filter or page for more
let openJob = () => {};
let reload = () => {};
let pending = false;

/** The filters as the REST list API takes them. */
export function currentFilters() {
  return {
    status: $("#filter-status").value,
    customer_id: $("#filter-customer").value.trim(),
    type: $("#filter-type").value.trim(),
  };
}

/** The job id search, lower-cased ("" for none). */
function idQuery() {
  return $("#filter-id").value.trim().toLowerCase();
}

const FULL_ID = /^[0-9a-f]{32}$/;

/** Every job the page holds that the filters and the id search select, newest first. */
export function selectedJobs() {
  const f = currentFilters();
  const q = idQuery();
  const out = [];
  for (const id of store.jobOrder) {
    const job = store.jobs.get(id);
    if (job && matches(job, f) && (!q || id.startsWith(q))) out.push(job);
  }
  return out;
}

/** A full id the page does not hold yet: fetch it, show it, and open it. */
async function findById(q) {
  if (!FULL_ID.test(q) || store.jobs.has(q)) {
    if (store.jobs.has(q)) openJob(q);
    return;
  }
  try {
    const fetchedAt = performance.now();
    store.mergeJob(await api.getJob(q), { fetchedAt });
    openJob(q);
  } catch (err) {
    toast(`No job ${q}: ${err.message}`, "error");
  }
}

function matches(job, f) {
  if (f.status && job.status !== f.status) return false;
  if (f.customer_id && (job.customer_id || "") !== f.customer_id) return false;
  if (f.type && job.type !== f.type) return false;
  return true;
}

function row(job) {
  const canCancel = !FINAL_STATUSES.has(job.status);
  const canRetry = ["failed", "timeout", "cancelled"].includes(job.status);
  const priority = job.workflow_priority ?? job.priority;
  return h("tr.job-row", { dataset: { jobId: job.id, status: job.status || "" }, onclick: (e) => {
    if (e.target.closest("button")) return;
    openJob(job.id);
  } },
  h("td.mono", {}, h("a.job-link", { href: `#job/${job.id}`, onclick: (e) => { e.preventDefault(); openJob(job.id); }, title: job.id, text: shortId(job.id) })),
  h("td", { text: job.type || "—" }),
  h("td", {}, statusBadge(job.status)),
  h("td.num.hide-phone", { text: priority ?? "—", title: job.workflow_priority !== null && job.workflow_priority !== undefined ? "workflow priority" : "priority" }),
  h("td.hide-narrow", { text: job.customer_id || "—" }),
  h("td.hide-narrow.mono", { text: job.worker_id ? shortId(job.worker_id) : "—", title: job.worker_id || "" }),
  h("td.progress-cell", {}, progressBar(job.status === "completed" ? 100 : job.progress, job.status),
    job.message && ACTIVE_STATUSES.has(job.status) ? h("div.row-msg", { text: job.message }) : null),
  h("td.hide-narrow", { text: fmtTime(job.created_at) }),
  h("td.actions", {},
    canCancel ? actionButton("cancel", job.id) : null,
    canRetry ? actionButton("retry", job.id) : null));
}

// Rows are keyed by job id and replaced only when what they show changes; a progress
// tick only moves the bar, so a row under the pointer is never swapped mid-click.
const rowCache = new Map();

function signature(job) {
  return [job.status, job.type, job.priority, job.workflow_priority, job.customer_id, job.worker_id,
    job.status === "completed" ? "" : job.message, job.created_at].join("|");
}

function rowFor(job) {
  const sig = signature(job);
  const cached = rowCache.get(job.id);
  if (cached && cached.sig === sig) {
    const pct = Math.max(0, Math.min(100, Math.round(Number(job.status === "completed" ? 100 : job.progress) || 0)));
    const bar = cached.node.querySelector(".progress");
    if (bar && bar.getAttribute("aria-valuenow") !== String(pct)) {
      bar.setAttribute("aria-valuenow", String(pct));
      bar.setAttribute("aria-label", `progress ${pct}%`);
      bar.querySelector(".progress-fill").style.width = `${pct}%`;
      bar.querySelector(".progress-text").textContent = `${pct}%`;
    }
    return cached.node;
  }
  const node = row(job);
  rowCache.set(job.id, { sig, node });
  return node;
}

export function renderJobs() {
  pending = false;
  const selected = selectedJobs();
  const rows = selected.slice(0, MAX_ROWS);
  const body = $("#jobs-body");
  if (!rows.length) {
    rowCache.clear();
    mount(body, h("tr", {}, h("td.empty.muted", { colspan: 9, text: "No jobs match." })));
  } else {
    // Keyed reconcile: a new job at the top is one insertBefore, not a rebuild of
    // every row, which keeps a flood of events from starving the page.
    let cursor = body.firstChild;
    for (const node of rows.map(rowFor)) {
      if (node === cursor) {
        cursor = cursor.nextSibling;
        continue;
      }
      body.insertBefore(node, cursor);
    }
    while (cursor) {
      const next = cursor.nextSibling;
      cursor.remove();
      cursor = next;
    }
    const keep = new Set(rows.map((j) => j.id));
    for (const id of rowCache.keys()) if (!keep.has(id)) rowCache.delete(id);
  }
  $("#jobs-shown").textContent = selected.length > rows.length
    ? `${rows.length} of ${selected.length} shown`
    : `${rows.length} shown`;
  store.emit("selection");
}

/** Coalesce bursts of events (a progress tick per job) into one render per frame. */
function scheduleRender() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(renderJobs);
}

export function initJobs({ onOpenJob, onReload }) {
  openJob = onOpenJob;
  reload = onReload;
  mount($("#filter-status"), h("option", { value: "", text: "any status" }),
    JOB_STATUSES.map((s) => h("option", { value: s, text: s.replace("_", " ") })));
  const form = $("#job-filters");
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = idQuery();
    if (q) findById(q);
    reload();
  });
  $("#filter-id").addEventListener("input", () => scheduleRender());
  $("#filter-status").addEventListener("change", () => reload());
  form.addEventListener("reset", () => setTimeout(() => reload(), 0));
  store.on("jobs", scheduleRender);
  renderJobs();
}
