// Turns the hub's stats reply (`GET /api/stats`, `stats_broadcast`) into the fixed
// shape the views draw. CONTRACT §3 names what the stats hold but not the key names,
// so this reads the documented names first and a few common spellings after.

/** The first value found at any of the dotted paths. */
function pick(obj, ...paths) {
  for (const path of paths) {
    let cur = obj;
    for (const part of path.split(".")) {
      if (cur === null || cur === undefined || typeof cur !== "object") {
        cur = undefined;
        break;
      }
      cur = cur[part];
    }
    if (cur !== undefined && cur !== null) return cur;
  }
  return undefined;
}

function num(value) {
  if (value === null || value === undefined) return null;
  if (typeof value === "object") return null;
  const n = Number(value);
  return Number.isFinite(n) ? n : null;
}

function countsOf(value) {
  const out = {};
  if (!value || typeof value !== "object") return out;
  for (const [k, v] of Object.entries(value)) {
    const n = typeof v === "object" && v !== null ? num(v.count ?? v.total) : num(v);
    if (n !== null) out[k] = n;
  }
  return out;
}

// Band names, highest priority first; anything else keeps the hub's order.
const BAND_ORDER = ["critical", "urgent", "high", "normal", "medium", "low", "background"];

function bandsOf(value) {
  if (!value) return [];
  let bands;
  if (Array.isArray(value)) {
    bands = value.map((b, i) => ({
      name: String(b.band ?? b.name ?? b.label ?? (b.min !== undefined ? `${b.min}-${b.max}` : i)),
      count: num(b.count ?? b.queued ?? b.depth ?? b.total) ?? 0,
      min: num(b.min),
    }));
  } else {
    bands = Object.entries(value).map(([name, v]) => ({
      name,
      count: (typeof v === "object" && v !== null ? num(v.count ?? v.queued ?? v.depth ?? v.total) : num(v)) ?? 0,
      min: typeof v === "object" && v !== null ? num(v.min) : rangeStart(name),
    }));
  }
  return bands.sort((a, b) => bandRank(a) - bandRank(b));
}

function rangeStart(name) {
  const m = /^(\d+)\s*[-–]/.exec(name);
  return m ? Number(m[1]) : null;
}

function bandRank(band) {
  const i = BAND_ORDER.indexOf(band.name.toLowerCase());
  if (i >= 0) return i;
  if (band.min !== null && band.min !== undefined) return 100 - band.min; // numeric ranges: high first
  return 50;
}

/** Seconds from a value that may be seconds, or an object {avg|average|mean}. */
function seconds(value) {
  if (value && typeof value === "object") return num(value.avg ?? value.average ?? value.mean ?? value.seconds);
  return num(value);
}

function perSecond(value) {
  const n = num(value);
  return n === null ? null : n * 60;
}

/** The normalised stats every view reads. */
export function normalizeStats(raw) {
  const s = raw && raw.stats && typeof raw.stats === "object" ? raw.stats : raw || {};
  const byStatus = countsOf(pick(s, "jobs.by_status", "queue.by_status", "jobs_by_status", "by_status", "queue_depth", "queue.depth", "jobs"));
  const bands = bandsOf(pick(s, "queued_by_priority_band", "queue.by_priority_band", "jobs.by_priority_band", "by_priority_band", "queue_by_priority_band", "priority_bands", "queue.by_priority", "queue.priority_bands", "bands"));
  const workersRaw = pick(s, "workers.by_status", "workers_by_status", "workers");
  const workersByStatus = countsOf(workersRaw);
  delete workersByStatus.total;
  const running = ["assigned", "accepted", "in_progress"].reduce((a, k) => a + (byStatus[k] || 0), 0);
  const queued = num(pick(s, "queue.queued", "queued")) ?? byStatus.queued ?? bands.reduce((a, b) => a + b.count, 0);
  const tp = pick(s, "throughput");
  const throughput = {
    perMinute: num(pick(s, "finished_last_minute", "throughput.per_minute", "throughput.jobs_per_minute", "throughput.completed_per_minute", "throughput.completed_last_minute", "throughput.last_minute", "jobs_per_minute", "throughput_per_minute"))
      ?? (num(tp) !== null ? num(tp) : null)
      ?? perSecond(pick(s, "throughput_per_second", "throughput.per_second", "throughput.jobs_per_second")),
    completed: num(pick(s, "throughput.completed_total", "throughput.completed", "completed_total", "jobs.completed_total")) ?? byStatus.completed ?? null,
    failed: num(pick(s, "throughput.failed_total", "throughput.failed", "failed_total")) ?? byStatus.failed ?? null,
  };
  return {
    byStatus,
    bands,
    queued,
    running,
    workersByStatus,
    workersTotal: num(pick(s, "workers_connected", "workers.connected", "workers.total", "workers_total")) ?? Object.values(workersByStatus).reduce((a, b) => a + b, 0),
    throughput,
    avgWait: seconds(pick(s, "average_wait_time", "avg_wait_time", "average_wait_seconds", "avg_wait_seconds", "wait_time", "times.average_wait", "times.avg_wait", "timing.avg_wait_seconds", "timing.average_wait")),
    avgRun: seconds(pick(s, "average_run_time", "avg_run_time", "average_run_seconds", "avg_run_seconds", "run_time", "average_processing_time", "avg_processing_time", "times.average_run", "times.avg_run", "timing.avg_run_seconds", "timing.average_run")),
  };
}
