// The page's state: jobs, workers, stats and their history, fed by REST snapshots and
// WebSocket events. Views subscribe to topics and re-render what changed.

import { toMs } from "./util.js";

const HISTORY_POINTS = 450; // 15 min at the 2 s stats interval
const EVENTS_PER_JOB = 200;
const MAX_ALERTS = 20;
// The page stays open all day: beyond this many jobs the oldest finished ones are
// forgotten (the hub still has them; filters and "Load more" fetch them again).
const MAX_JOBS = 3000;
const MAX_GONE_WORKERS = 50;
const FINAL = new Set(["completed", "failed", "timeout", "cancelled"]);

class Store {
  constructor() {
    this.jobs = new Map();
    this.jobOrder = []; // ids in the order of the last REST list (newest first)
    this.jobEvents = new Map();
    this.liveAt = new Map(); // job id -> performance.now() of its last live event
    this.listed = new Set(); // ids in the last REST listing: never pruned
    this.workers = new Map(); // connected workers
    this.offlineWorkers = new Map(); // recently seen, now gone
    this.stats = null;
    this.rawStats = null;
    this.history = [];
    this.alerts = [];
    this.listeners = new Map();
  }

  on(topic, fn) {
    if (!this.listeners.has(topic)) this.listeners.set(topic, new Set());
    this.listeners.get(topic).add(fn);
    return () => this.listeners.get(topic).delete(fn);
  }

  emit(topic, detail) {
    for (const fn of this.listeners.get(topic) || []) fn(detail);
  }

  // ------------------------------------------------------------------ jobs

  setJobList(jobs, fetchedAt = null) {
    // Jobs that live events brought in while the request was on its way stay listed,
    // first (newest), when the snapshot does not hold them: the snapshot is only the
    // newest page, and a burst arriving meanwhile is newer than it.
    const listed = new Set(jobs.map((j) => j.id));
    this.jobOrder =
      fetchedAt === null
        ? []
        : this.jobOrder.filter((id) => !listed.has(id) && (this.liveAt.get(id) ?? -1) > fetchedAt);
    this.listed = listed;
    for (const job of jobs) {
      this.mergeJob(job, { quiet: true, fetchedAt });
      this.jobOrder.push(job.id);
    }
    this.emit("jobs");
  }

  /** Add the next page of the REST list after the jobs already listed. */
  appendJobList(jobs, fetchedAt = null) {
    for (const job of jobs) {
      this.listed.add(job.id);
      this.mergeJob(job, { quiet: true, fetchedAt });
      if (!this.jobOrder.includes(job.id)) this.jobOrder.push(job.id);
    }
    this.emit("jobs");
  }

  /**
   * Merge a full job record (REST) into the store. `fetchedAt` is when its request
   * started (performance.now()): a live event applied after that is newer than the
   * record, so the record's live fields (status, progress, message, worker) lose.
   */
  mergeJob(job, { quiet = false, fetchedAt = null } = {}) {
    if (!job || !job.id) return;
    const old = this.jobs.get(job.id) || {};
    let incoming = job;
    if (fetchedAt !== null && (this.liveAt.get(job.id) ?? -1) > fetchedAt) {
      const { status, progress, message, worker_id: workerId, ...rest } = job;
      incoming = rest;
    }
    const merged = { ...old, ...incoming };
    // Same status but less progress: the record is a step behind the events.
    if (old.status === job.status && Number(old.progress) > Number(job.progress)) merged.progress = old.progress;
    this.jobs.set(job.id, merged);
    if (!this.jobEvents.has(job.id)) this.seedEvents(merged);
    if (!quiet) {
      if (!this.jobOrder.includes(job.id)) this.jobOrder.unshift(job.id);
      this.prune();
      this.emit("jobs");
      this.emit("job", job.id);
    }
  }

  /** Forget the oldest finished jobs once there are more than MAX_JOBS. */
  prune() {
    // Amortised: a pass runs only after the store grew 10% past the last one, so a
    // flood of unfinished jobs (which cannot be dropped) does not rescan per event.
    if (this.jobs.size <= Math.max(MAX_JOBS, this.pruneAt || 0)) return;
    const listed = new Set(this.jobOrder);
    const victims = [...this.jobOrder].reverse().concat([...this.jobs.keys()].filter((id) => !listed.has(id)));
    for (const id of victims) {
      if (this.jobs.size <= MAX_JOBS * 0.9) break;
      const job = this.jobs.get(id);
      if (!job || !FINAL.has(job.status) || this.listed.has(id)) continue;
      this.jobs.delete(id);
      this.jobEvents.delete(id);
      this.liveAt.delete(id);
    }
    this.jobOrder = this.jobOrder.filter((id) => this.jobs.has(id));
    this.pruneAt = Math.ceil(this.jobs.size * 1.1);
  }

  /** Start a job's history from the timestamps in its record (events before page load). */
  seedEvents(job) {
    const events = [];
    const add = (at, status, text) => {
      const t = toMs(at);
      if (t !== null) events.push({ t, type: "record", status, message: text });
    };
    add(job.created_at, "queued", "submitted");
    add(job.assigned_at, "assigned", job.worker_id ? `assigned to ${job.worker_id}` : "assigned");
    add(job.started_at, "in_progress", "started");
    add(job.completed_at, job.status, job.error || "finished");
    events.sort((a, b) => a.t - b.t);
    this.jobEvents.set(job.id, events);
  }

  /** Apply a job event from the WebSocket; returns true when the job was unknown. */
  applyJobEvent(msg) {
    const id = msg.job_id;
    if (!id) return false;
    const known = this.jobs.has(id);
    const job = { ...(this.jobs.get(id) || { id }) };
    if (msg.status) job.status = msg.status;
    if (msg.progress !== undefined && msg.progress !== null) job.progress = Number(msg.progress);
    if (msg.message !== undefined && msg.message !== null) job.message = msg.message;
    if (msg.worker_id) job.worker_id = msg.worker_id;
    // Events carry enough of the job to show a row before its record is fetched.
    if (msg.job_type && !job.type) job.type = msg.job_type;
    if (msg.customer_id !== undefined && job.customer_id === undefined) job.customer_id = msg.customer_id;
    if (msg.priority !== undefined && job.priority === undefined) job.priority = msg.priority;
    if (msg.attempts !== undefined) job.attempts = msg.attempts;
    if (!job.created_at && msg.status === "queued" && msg.previous_status === undefined) job.created_at = msg.timestamp;
    if (msg.type === "job_completed") {
      job.status = msg.status || "completed";
      job.progress = 100;
      if (msg.result !== undefined) job.result = msg.result;
    }
    if (msg.type === "job_failed") {
      job.error = msg.error ?? job.error;
      if (msg.attempts !== undefined) job.attempts = msg.attempts;
      if (msg.status) job.status = msg.status;
      else if (!msg.will_retry) job.status = "failed";
    }
    this.jobs.set(id, job);
    this.liveAt.set(id, performance.now());
    this.recordEvent(id, msg);
    // A job dropped from the list by an earlier filter comes back when it changes.
    if (known && !this.jobOrder.includes(id)) this.jobOrder.unshift(id);
    if (known) {
      this.emit("jobs");
      this.emit("job", id);
    }
    return !known;
  }

  recordEvent(id, msg) {
    const events = this.jobEvents.get(id) || [];
    const t = toMs(msg.timestamp) ?? Date.now();
    // A replay after reconnect (`since`) can repeat an event we already hold.
    const eventId = msg.event_id || msg.id || null;
    if (eventId && events.some((e) => e.eventId === eventId)) return;
    events.push({
      t, eventId, type: msg.type, status: msg.status || (msg.type === "job_failed" ? "failed" : null),
      progress: msg.progress, message: msg.message || msg.error || (msg.type === "job_completed" ? "completed" : ""),
      worker_id: msg.worker_id, will_retry: msg.will_retry,
    });
    events.sort((a, b) => a.t - b.t);
    if (events.length > EVENTS_PER_JOB) events.splice(0, events.length - EVENTS_PER_JOB);
    this.jobEvents.set(id, events);
  }

  // --------------------------------------------------------------- workers

  setWorkers(list) {
    this.workers.clear();
    for (const w of list) {
      if (w.connected === false || w.status === "offline") {
        this.offlineWorkers.set(w.worker_id, w);
      } else {
        this.workers.set(w.worker_id, w);
        this.offlineWorkers.delete(w.worker_id);
      }
    }
    this.emit("workers");
  }

  mergeWorker(info) {
    if (!info || !info.worker_id) return;
    if (info.connected === false || info.status === "offline") {
      this.removeWorker(info.worker_id, info);
      return;
    }
    const old = this.workers.get(info.worker_id) || this.offlineWorkers.get(info.worker_id) || {};
    this.workers.set(info.worker_id, { ...old, ...info, connected: true });
    this.offlineWorkers.delete(info.worker_id);
    this.emit("workers");
  }

  removeWorker(id, detail = {}) {
    const old = this.workers.get(id) || this.offlineWorkers.get(id) || { worker_id: id };
    this.workers.delete(id);
    this.offlineWorkers.set(id, { ...old, ...detail, worker_id: id, connected: false, status: "offline", gone_at: Date.now() });
    if (this.offlineWorkers.size > MAX_GONE_WORKERS) this.offlineWorkers.delete(this.offlineWorkers.keys().next().value);
    this.emit("workers");
  }

  // ----------------------------------------------------------------- stats

  setStats(raw, normalized) {
    this.rawStats = raw;
    this.stats = normalized;
    const point = { t: Date.now(), bands: normalized.bands, queued: normalized.queued, running: normalized.running };
    const last = this.history[this.history.length - 1];
    // Two replies in the same instant (request_stats + broadcast) are one point.
    if (last && point.t - last.t < 250) this.history[this.history.length - 1] = point;
    else this.history.push(point);
    if (this.history.length > HISTORY_POINTS) this.history.splice(0, this.history.length - HISTORY_POINTS);
    this.emit("stats");
  }

  addAlert(alert) {
    this.alerts.unshift({ ...alert, t: toMs(alert.timestamp) ?? Date.now() });
    this.alerts.length = Math.min(this.alerts.length, MAX_ALERTS);
    this.emit("alerts");
  }
}

export const store = new Store();
