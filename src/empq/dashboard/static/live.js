// The monitor's WebSocket to the hub (`/ws` on the page's own origin, CONTRACT §4).
// It registers as a monitor, subscribes to stats, job notifications and worker
// updates, and reconnects by itself with exponential back-off and jitter. On every
// (re)connect it asks for job events after the last one it saw (`since`) so the
// event history has no hole, and tells the app to refetch lists through REST.

import { currentKey, requestKey } from "./api.js";

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15000;
const STATS_INTERVAL_S = 2;

export class LiveConnection {
  /**
   * @param {object} handlers - onMessage(msg), onState(state, detail), onConnected(isReconnect)
   */
  constructor(handlers) {
    this.handlers = handlers;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.lastEventId = null;
    this.everConnected = false;
    this.stopped = false;
    this.askingKey = false;
    this.hintMs = null; // reconnect delay the hub asked for in server_disconnect
    this.awaitingSubscription = null; // {ws, isReconnect} until the hub confirms
    this.clientId = `dashboard-${Math.random().toString(36).slice(2, 10)}`;
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    return `${scheme}://${location.host}/ws`;
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) {
      const old = this.ws;
      this.ws = null;
      old.onclose = null;
      old.close(1000, "dashboard closed");
    }
    this.handlers.onState("offline", "stopped");
  }

  /** Drop the current socket and connect again now (after a new API key, say). */
  reconnectNow() {
    clearTimeout(this.timer);
    this.attempt = 0;
    if (this.ws) {
      const old = this.ws;
      this.ws = null;
      old.onclose = null;
      old.close(1000, "reconnecting");
    }
    this.open();
  }

  open() {
    this.handlers.onState("connecting", this.attempt ? `attempt ${this.attempt + 1}` : "");
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch (err) {
      this.scheduleReconnect(String(err));
      return;
    }
    this.ws = ws;
    ws.onopen = () => this.onOpen(ws);
    ws.onmessage = (ev) => this.onMessage(ev);
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.scheduleReconnect(ev.reason || `closed (${ev.code})`);
    };
    // onerror is always followed by onclose, which does the reconnecting.
    ws.onerror = () => {};
  }

  onOpen(ws) {
    const isReconnect = this.everConnected;
    this.everConnected = true;
    this.attempt = 0;
    const key = currentKey();
    this.send({ type: "register_client", client_type: "monitor", client_id: this.clientId, ...(key ? { api_key: key } : {}) });
    // A customer key sees its own jobs only: no fleet stats, no workers.
    if (!this.customerView) this.send({ type: "subscribe_stats", enabled: true, interval_seconds: STATS_INTERVAL_S });
    const sub = { type: "subscribe_job_notifications", enabled: true, filters: {} };
    if (this.lastEventId) sub.since = this.lastEventId;
    this.send(sub);
    if (!this.customerView) {
      this.send({ type: "subscribe_worker_updates", enabled: true });
      this.send({ type: "request_stats" });
    }
    // Live, and the lists fetched, only once the hub has the job subscription: a job
    // submitted before then is in the REST snapshot, one after it comes as an event.
    // (Going live at `open` left a gap: a burst submitted while the subscription was
    // on its way reached neither.)
    this.awaitingSubscription = { ws, isReconnect };
    if (this.ws !== ws) ws.close();
  }

  subscribed() {
    const pending = this.awaitingSubscription;
    if (!pending || pending.ws !== this.ws) return;
    this.awaitingSubscription = null;
    this.handlers.onState("live", "");
    this.handlers.onConnected(pending.isReconnect);
  }

  onMessage(ev) {
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      return; // the hub only sends JSON; anything else is not ours to show
    }
    if (!msg || typeof msg.type !== "string") return;
    if (msg.type === "server_disconnect") {
      // A hub going down on purpose says when to come back; that beats guessing.
      const after = Number(msg.reconnect_after);
      this.attempt = 0;
      this.hintMs = Number.isFinite(after) && after >= 0 ? after * 1000 : null;
    }
    if (msg.type === "error" && isAuthError(msg)) {
      this.onAuthError(msg);
      return;
    }
    if (msg.type === "job_notifications_subscribed" && !msg.job_id) this.subscribed();
    // The hub tags each job event with its stream id (`event_id`) for `since`.
    const eventId = msg.event_id || msg.id;
    if (eventId && isJobEvent(msg.type)) this.lastEventId = eventId;
    this.handlers.onMessage(msg);
  }

  async onAuthError(msg) {
    // Every subscribe sent before the key was checked is refused too: ask only once.
    if (this.askingKey) return;
    this.askingKey = true;
    this.handlers.onState("auth", msg.error || "API key needed");
    try {
      const key = await requestKey(currentKey() ? "The hub refused this API key." : "The hub needs an API key.");
      if (key) this.reconnectNow();
    } finally {
      this.askingKey = false;
    }
  }

  scheduleReconnect(reason) {
    if (this.stopped) return;
    const base = this.hintMs ?? Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    this.hintMs = null;
    // Jitter spreads out many dashboards reconnecting to a restarted hub.
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.attempt += 1;
    this.handlers.onState("offline", `${reason}; retrying in ${(delay / 1000).toFixed(1)} s`);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), delay);
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ ...msg, timestamp: Date.now() }));
      return true;
    }
    return false;
  }
}

const JOB_EVENTS = new Set(["job_update", "job_completed", "job_failed", "job_progress", "job_status_change"]);

function isJobEvent(type) {
  return JOB_EVENTS.has(type);
}

function isAuthError(msg) {
  const code = String(msg.error_code || "").toUpperCase();
  // FORBIDDEN is a customer key asking for a fleet view: the key itself was accepted.
  return code === "AUTH_FAILED" || code === "UNAUTHORIZED" || code === "AUTH_REQUIRED";
}
