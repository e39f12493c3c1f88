// The dashboard's entry point: wires the REST snapshots and the live WebSocket into
// the store, and the store into the views.

import { api, currentKey, onKeyNeeded, setApiKey } from "./api.js";
import { LiveConnection } from "./live.js";
import { normalizeStats } from "./stats.js";
import { store } from "./store.js";
import { $, debounce, throttle } from "./util.js";
import { initBulk } from "./views/bulk.js";
import { closeDetail, initDetail, openDetail } from "./views/detail.js";
import { currentFilters, initJobs } from "./views/jobs.js";
import { initOverview } from "./views/overview.js";
import { initServices, refresh as refreshServices } from "./views/services.js";
import { initSubmit } from "./views/submit.js";
import { toast } from "./views/toast.js";
import { initWorkers } from "./views/workers.js";

const JOB_LIST_LIMIT = 100;

// ------------------------------------------------------------ REST snapshots

let nextCursor = null;

function showMore(cursor) {
  nextCursor = cursor || null;
  $("#jobs-more").hidden = !nextCursor;
}

async function loadJobs() {
  try {
    const fetchedAt = performance.now();
    const reply = await api.listJobs({ ...currentFilters(), limit: JOB_LIST_LIMIT });
    store.setJobList(reply.jobs || [], fetchedAt);
    showMore(reply.next_cursor);
  } catch (err) {
    toast(`Could not load jobs: ${err.message}`, "error");
  }
}

async function loadMoreJobs() {
  if (!nextCursor) return;
  try {
    const fetchedAt = performance.now();
    const reply = await api.listJobs({ ...currentFilters(), limit: JOB_LIST_LIMIT, cursor: nextCursor });
    store.appendJobList(reply.jobs || [], fetchedAt);
    showMore(reply.next_cursor);
  } catch (err) {
    toast(`Could not load more jobs: ${err.message}`, "error");
  }
}

// With a customer key the page is read-only and shows that customer's jobs only.
let customerView = false;

async function applyScope() {
  try {
    const me = await api.whoami();
    customerView = me.role === "customer";
    document.body.dataset.scope = customerView ? "customer" : "operator";
    $("#scope-label").textContent = customerView ? `customer ${me.customer_id} · read-only` : "";
  } catch {
    customerView = false; // an older hub, or no key yet: the operator's page
  }
  if (live) live.customerView = customerView;
  if (!customerView && document.body.dataset.scope === "operator") refreshServices();
}

async function loadWorkers() {
  if (customerView) return;
  try {
    const reply = await api.listWorkers();
    store.setWorkers(reply.workers || []);
  } catch (err) {
    toast(`Could not load workers: ${err.message}`, "error");
  }
}

async function loadStats() {
  if (customerView) return;
  try {
    const raw = await api.stats();
    store.setStats(raw, normalizeStats(raw));
  } catch (err) {
    toast(`Could not load stats: ${err.message}`, "error");
  }
}

// Jobs first heard of through an event are fetched once, in a batch, for the fields
// events do not carry. Events already give type, customer, priority and status, so
// under a flood (thousands of submissions) only the first few are fetched and the
// rest show from their events; the detail view fetches any job it opens.
const UNKNOWN_FETCH_MAX = 20;
const unknownJobs = new Set();
const fetchUnknownJobs = debounce(async () => {
  const ids = [...unknownJobs].slice(0, UNKNOWN_FETCH_MAX);
  unknownJobs.clear();
  await Promise.all(ids.map(async (id) => {
    try {
      const fetchedAt = performance.now();
      store.mergeJob(await api.getJob(id), { fetchedAt });
    } catch {
      // gone already (cleaned up) or not visible to this key: the event row stays
    }
  }));
}, 150);

// A job that changes status changes the counts: ask for fresh stats at once rather
// than waiting for the next broadcast (debounced, so a burst costs one request).
let live = null;
const requestStatsSoon = debounce(() => live && !customerView && live.send({ type: "request_stats" }), 250);

// Heartbeats are not broadcast one by one; the worker list is re-read with each
// stats tick so heartbeat ages and current jobs stay true.
const refreshWorkers = throttle(loadWorkers, 1500);

// ------------------------------------------------------------ live messages

function onMessage(msg) {
  switch (msg.type) {
    case "stats_broadcast":
      store.setStats(msg, normalizeStats(msg));
      refreshWorkers();
      break;
    case "job_update":
    case "job_completed":
    case "job_failed": {
      const before = store.jobs.get(msg.job_id)?.status;
      if (store.applyJobEvent(msg)) {
        store.mergeJob({ ...store.jobs.get(msg.job_id), id: msg.job_id });
        unknownJobs.add(msg.job_id);
        fetchUnknownJobs();
      }
      if (store.jobs.get(msg.job_id)?.status !== before) requestStatsSoon();
      break;
    }
    case "worker_registered":
    case "worker_status":
      store.mergeWorker(msg);
      break;
    case "worker_disconnected":
      store.removeWorker(msg.worker_id, { reason: msg.reason });
      break;
    case "system_alert":
      store.addAlert(msg);
      toast(`${msg.severity || "alert"}: ${msg.message || msg.category || ""}`, msg.severity === "info" ? "info" : "error");
      break;
    case "error":
      toast(`Hub: ${msg.error || msg.error_code}`, "error");
      break;
    case "server_disconnect":
      toast(`Hub going away (${msg.reason || "restart"}); reconnecting…`, "info");
      break;
    default:
      break; // connection_established, client_registered, confirmations
  }
}

function onState(state, detail) {
  const node = $("#conn");
  node.dataset.state = state;
  const labels = { connecting: "connecting…", live: "live", offline: "offline", auth: "needs key" };
  $("#conn-label").textContent = labels[state] || state;
  node.title = detail || "";
}

function onConnected(isReconnect) {
  // After a reconnect the snapshots may have moved on: reload them without a page reload.
  loadJobs();
  loadWorkers();
  if (isReconnect) {
    loadStats();
    toast("Reconnected to the hub", "ok");
  }
}

// ------------------------------------------------------------ API key dialog

function askForKey(reason) {
  const dialog = $("#key-dialog");
  $("#key-reason").textContent = reason;
  $("#key-input").value = "";
  // Escape closes a dialog without touching returnValue: clear the last answer.
  dialog.returnValue = "";
  return new Promise((resolve) => {
    const done = () => {
      dialog.removeEventListener("close", done);
      resolve(dialog.returnValue === "ok" ? $("#key-input").value.trim() || null : null);
    };
    dialog.addEventListener("close", done);
    if (!dialog.open) dialog.showModal();
    $("#key-input").focus();
  });
}

// ------------------------------------------------------------ routing

function route() {
  const m = /^#job\/(.+)$/.exec(location.hash);
  if (m) openDetail(decodeURIComponent(m[1]));
  else closeDetail();
}

function openJob(id) {
  if (location.hash !== `#job/${id}`) history.pushState(null, "", `#job/${encodeURIComponent(id)}`);
  openDetail(id);
}

// ------------------------------------------------------------ start

async function start() {
  onKeyNeeded(askForKey);
  $("#key-cancel").addEventListener("click", () => $("#key-dialog").close("cancel"));
  live = new LiveConnection({ onMessage, onState, onConnected });
  $("#key-button").addEventListener("click", async () => {
    const key = await askForKey(currentKey() ? "Replace the API key stored in this browser." : "Enter an API key for this hub.");
    if (key) {
      setApiKey(key);
      await applyScope();
      live.reconnectNow();
    }
  });
  initOverview();
  initWorkers(openJob);
  initServices();
  initJobs({ onOpenJob: openJob, onReload: loadJobs });
  initBulk();
  $("#jobs-more").addEventListener("click", loadMoreJobs);
  initDetail();
  initSubmit();
  window.addEventListener("popstate", route);
  route();
  await applyScope();
  loadStats();
  live.start();
  // Exposed for operators poking at the console, and for the browser tests.
  window.empqDashboard = { store, live };
}

start();
