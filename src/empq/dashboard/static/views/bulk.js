// Retry or cancel every job shown (the filters and the id search select them) at once,
// after a confirmation that says how many jobs, and which. The buttons count the jobs
// each action applies to: cancel those not final, retry the failed, timed-out and
// cancelled ones.

import { api } from "../api.js";
import { store } from "../store.js";
import { $, FINAL_STATUSES, h, mount, shortId } from "../util.js";
import { selectedJobs } from "./jobs.js";
import { toast } from "./toast.js";

const RETRYABLE = new Set(["failed", "timeout", "cancelled"]);
const PARALLEL = 4; // requests in flight at once: quick, without flooding the hub
const LISTED = 20;

function targets(kind) {
  return selectedJobs().filter((j) => (kind === "cancel" ? !FINAL_STATUSES.has(j.status) : RETRYABLE.has(j.status)));
}

function verb(kind) {
  return kind === "cancel" ? "Cancel" : "Retry";
}

function refresh() {
  for (const kind of ["retry", "cancel"]) {
    const n = targets(kind).length;
    const button = $(`#bulk-${kind}`);
    button.disabled = n === 0;
    button.textContent = `${verb(kind)} ${n}`;
  }
}

async function runAll(kind, jobs) {
  let done = 0;
  let refused = 0;
  const queue = [...jobs];
  async function lane() {
    while (queue.length) {
      const job = queue.shift();
      try {
        const fetchedAt = performance.now();
        const reply = kind === "cancel" ? await api.cancelJob(job.id) : await api.retryJob(job.id);
        store.mergeJob(reply, { fetchedAt });
        done += 1;
      } catch {
        refused += 1; // e.g. it ended meanwhile (409): nothing to do
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(PARALLEL, queue.length) }, lane));
  const plural = done === 1 ? "" : "s";
  const past = kind === "cancel" ? "Cancelled" : "Retried";
  toast(`${past} ${done} job${plural}${refused ? `; ${refused} could not be` : ""}`, refused ? "error" : "ok");
}

function ask(kind) {
  const jobs = targets(kind);
  if (!jobs.length) return;
  const dialog = $("#bulk-dialog");
  const count = `${jobs.length} job${jobs.length === 1 ? "" : "s"}`;
  $("#bulk-title").textContent = `${verb(kind)} ${count}?`;
  $("#bulk-text").textContent = kind === "cancel"
    ? "Running jobs lose their work: their workers are told to stop."
    : "Each is queued again with a fresh retry budget.";
  mount($("#bulk-list"),
    jobs.slice(0, LISTED).map((j) => h("li", { text: `${shortId(j.id)} ${j.type || ""} (${j.status})` })),
    jobs.length > LISTED ? h("li.muted", { text: `and ${jobs.length - LISTED} more` }) : null);
  $("#bulk-go").textContent = `${verb(kind)} ${count}`;
  dialog.returnValue = "";
  dialog.onclose = () => {
    if (dialog.returnValue === "go") runAll(kind, jobs);
  };
  dialog.showModal();
}

export function initBulk() {
  $("#bulk-retry").addEventListener("click", () => ask("retry"));
  $("#bulk-cancel").addEventListener("click", () => ask("cancel"));
  store.on("selection", refresh); // after every render of the table
  refresh();
}
