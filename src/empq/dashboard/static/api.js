// REST calls to the hub on the same origin. When the hub requires an API key
// (EMPQ_API_KEYS) a 401/403 opens the key dialog once, the key is kept in
// localStorage, and the call is retried with `Authorization: Bearer <key>`.

const KEY_STORAGE = "empq.apiKey";

/** An error reply from the hub, with the contract's {code, message, details}. */
export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || describeDetail(body) || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || null;
    this.details = err.details ?? (body && body.detail) ?? null;
  }

  /** Field-level problems as "field: message" lines (422 replies). */
  fieldErrors() {
    const items = Array.isArray(this.details) ? this.details : [];
    return items.map((d) => {
      const loc = d.field ?? (Array.isArray(d.loc) ? d.loc.filter((p) => p !== "body").join(".") : "");
      return `${loc || "(body)"}: ${d.message || d.msg || JSON.stringify(d)}`;
    });
  }
}

function describeDetail(body) {
  if (!body || body.detail === undefined) return null;
  return typeof body.detail === "string" ? body.detail : "invalid request";
}

export function getApiKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || null;
  } catch {
    return null; // storage disabled (private mode): the key lives only in memory then
  }
}

let memoryKey = null;

export function setApiKey(key) {
  memoryKey = key || null;
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // storage disabled: memoryKey keeps it for this page
  }
}

export function currentKey() {
  return memoryKey || getApiKey();
}

// One pending key prompt shared by every request that hit 401 at the same time.
let keyPrompt = null;
let askForKey = async () => null;

/** Install the function that asks the operator for a key (returns it, or null). */
export function onKeyNeeded(fn) {
  askForKey = fn;
}

/** Ask for a key once, however many callers need it. */
export function requestKey(reason) {
  if (!keyPrompt) {
    keyPrompt = Promise.resolve(askForKey(reason)).then((key) => {
      keyPrompt = null;
      if (key) setApiKey(key);
      return key;
    });
  }
  return keyPrompt;
}

/** fetch() with the API key and JSON handling; throws ApiError on a non-2xx reply. */
export async function request(method, path, body, { raw = false } = {}) {
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const headers = { Accept: "application/json" };
    const key = currentKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status === 403) {
      // A customer key asking for an operator's view: the key is fine, the view is not.
      const body = await readJson(res);
      if (body && body.error && body.error.code === "FORBIDDEN") throw new ApiError(403, body);
      const newKey = await requestKey("The hub refused this API key.");
      if (newKey) continue;
      throw new ApiError(403, body);
    }
    if (res.status === 401) {
      const reason = res.status === 401 ? "The hub needs an API key." : "The hub refused this API key.";
      const newKey = await requestKey(reason);
      if (newKey) continue;
      throw new ApiError(res.status, await readJson(res));
    }
    if (!res.ok) throw new ApiError(res.status, await readJson(res));
    if (raw) return res;
    return res.status === 204 ? null : readJson(res);
  }
  throw new ApiError(401, { error: { code: "unauthorized", message: "no valid API key" } });
}

async function readJson(res) {
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { error: { message: text.slice(0, 300) } };
  }
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

const enc = encodeURIComponent;

export const api = {
  listJobs: (filters = {}) => request("GET", `/api/jobs${query(filters)}`),
  getJob: (id) => request("GET", `/api/jobs/${enc(id)}`),
  submitJob: (submission) => request("POST", "/api/jobs", submission),
  cancelJob: (id) => request("POST", `/api/jobs/${enc(id)}/cancel`),
  retryJob: (id) => request("POST", `/api/jobs/${enc(id)}/retry`),
  explainJob: (id) => request("GET", `/api/jobs/${enc(id)}/explain`),
  listWorkers: () => request("GET", "/api/workers"),
  getWorker: (id) => request("GET", `/api/workers/${enc(id)}`),
  stats: () => request("GET", "/api/stats"),
  listServices: () => request("GET", "/api/services"),
  pauseService: (svc) => request("POST", `/api/services/${enc(svc)}/pause`),
  resumeService: (svc) => request("POST", `/api/services/${enc(svc)}/resume`),
  drainWorker: (id) => request("POST", `/api/workers/${enc(id)}/drain`),
  whoami: () => request("GET", "/api/whoami"),
  /** An artifact as a blob URL: <img src> cannot carry the Authorization header. */
  artifactUrl: async (url) => {
    const res = await request("GET", url, undefined, { raw: true });
    return URL.createObjectURL(await res.blob());
  },
};
