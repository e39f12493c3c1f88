// Small DOM and formatting helpers shared by every view. No framework: views rebuild
// their own subtree from state, which keeps the page dependency-free.

/** Create an element: h("td.cls#id", {attrs}, ...children). Strings become text nodes. */
export function h(tag, attrs = {}, ...children) {
  const [name, ...rest] = tag.split(/(?=[.#])/);
  const node = document.createElement(name || "div");
  for (const part of rest) {
    if (part.startsWith(".")) node.classList.add(part.slice(1));
    else if (part.startsWith("#")) node.id = part.slice(1);
  }
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(node.dataset, value);
    } else if (key === "text") {
      node.textContent = String(value);
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace all children of `node`. */
export function mount(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export const $ = (sel, root = document) => root.querySelector(sel);

/** Seconds as "850 ms", "12.3 s", "4m 05s", "2h 10m". */
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(Number(seconds))) return "—";
  const s = Number(seconds);
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** Milliseconds since epoch from an ISO string, a number (s or ms) or null. */
export function toMs(value) {
  if (value === null || value === undefined || value === "") return null;
  if (typeof value === "number") return value < 1e11 ? value * 1000 : value;
  const t = Date.parse(value);
  return Number.isNaN(t) ? null : t;
}

/** "3 s ago" style age of a timestamp. */
export function fmtAge(value, now = Date.now()) {
  const ms = toMs(value);
  if (ms === null) return "—";
  return `${fmtDuration(Math.max(0, (now - ms) / 1000))} ago`;
}

// Intl formatters are costly to build; a flood of new rows formats thousands of times.
const TIME_FMT = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
const DATE_FMT = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "2-digit", day: "2-digit" });

/** Local wall-clock time of a timestamp, with the date when it is not today. */
export function fmtTime(value) {
  const ms = toMs(value);
  if (ms === null) return "—";
  const d = new Date(ms);
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay ? TIME_FMT.format(d) : `${DATE_FMT.format(d)} ${TIME_FMT.format(d)}`;
}

export function fmtNumber(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return "—";
  const n = Number(value);
  return Number.isInteger(n) ? String(n) : n.toFixed(digits);
}

export function shortId(id) {
  return id && id.length > 12 ? `${id.slice(0, 8)}…` : id || "—";
}

/** Return `fn` debounced: it runs once, `ms` after the last call. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** Return `fn` throttled: at most once per `ms`, and once more after the last call. */
export function throttle(fn, ms) {
  let last = 0;
  let timer = null;
  return (...args) => {
    const wait = last + ms - Date.now();
    clearTimeout(timer);
    if (wait <= 0) {
      last = Date.now();
      fn(...args);
    } else {
      timer = setTimeout(() => {
        last = Date.now();
        fn(...args);
      }, wait);
    }
  };
}

/** Pretty JSON for display. */
export function pretty(value) {
  return JSON.stringify(value, null, 2);
}

export const FINAL_STATUSES = new Set(["completed", "failed", "timeout", "cancelled"]);
export const ACTIVE_STATUSES = new Set(["assigned", "accepted", "in_progress"]);
export const JOB_STATUSES = [
  "pending", "queued", "assigned", "accepted", "in_progress",
  "completed", "failed", "timeout", "cancelled",
];

/** A coloured status pill. */
export function statusBadge(status) {
  return h(`span.badge.st-${status || "unknown"}`, { text: (status || "unknown").replace("_", " ") });
}

/** A progress bar that screen readers (and tests) can read through aria-valuenow. */
export function progressBar(progress, status) {
  const pct = Math.max(0, Math.min(100, Math.round(Number(progress) || 0)));
  const bar = h("div.progress", {
    role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": pct,
    "aria-label": `progress ${pct}%`, dataset: { status: status || "" },
  }, h("div.progress-fill", { style: `width:${pct}%` }), h("span.progress-text", { text: `${pct}%` }));
  return bar;
}
