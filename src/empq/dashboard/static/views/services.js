// Services: pause and resume a service's queue (its jobs stay queued while paused).

import { api } from "../api.js";
import { $, h, mount } from "../util.js";
import { toast } from "./toast.js";

const REFRESH_MS = 5000;

function row(svc) {
  const kind = svc.paused ? "resume" : "pause";
  const button = h(`button.btn.small.${svc.paused ? "secondary" : "danger"}`, {
    type: "button", dataset: { action: kind, service: svc.service_type }, text: svc.paused ? "Resume" : "Pause",
  });
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await (svc.paused ? api.resumeService(svc.service_type) : api.pauseService(svc.service_type));
      toast(`${svc.paused ? "Resumed" : "Paused"} ${svc.service_type}`, "ok");
    } catch (err) {
      toast(`Could not ${kind} ${svc.service_type}: ${err.message}`, "error");
    }
    await refresh();
  });
  return h("li.service", { dataset: { service: svc.service_type, paused: String(Boolean(svc.paused)) } },
    h("strong", { text: svc.service_type }),
    h("span.muted", { text: ` ${svc.queued ?? 0} queued${svc.paused ? " · paused" : ""} ` }),
    button);
}

export async function refresh() {
  // Operators only: a customer key's page never asks (the hub would refuse it), and
  // the page asks once it knows whose key it has (`body[data-scope]`).
  if (document.body.dataset.scope !== "operator") return;
  let services = [];
  try {
    services = (await api.listServices()).services || [];
  } catch {
    return; // an older hub, a customer key, or the hub away: keep what is shown
  }
  mount($("#services-list"), services.length ? services.map(row) : h("li.muted", { text: "No queued or paused services." }));
}

export function initServices() {
  setInterval(refresh, REFRESH_MS);
}
