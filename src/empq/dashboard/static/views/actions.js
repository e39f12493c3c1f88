// Cancel and retry, shared by the jobs table and the job detail. Cancel asks for a
// second click, because a cancelled running job loses its work. The armed state is
// kept per job, so a row redrawn by a live update stays armed.

import { api } from "../api.js";
import { store } from "../store.js";
import { h } from "../util.js";
import { toast } from "./toast.js";

const CONFIRM_MS = 4000;
const armed = new Map(); // job id -> time the first click expires

async function run(kind, jobId, button) {
  button.disabled = true;
  try {
    const fetchedAt = performance.now();
    const job = kind === "cancel" ? await api.cancelJob(jobId) : await api.retryJob(jobId);
    store.mergeJob(job, { fetchedAt });
    toast(`${kind === "cancel" ? "Cancelled" : "Retrying"} job ${jobId}`, "ok");
  } catch (err) {
    toast(`Could not ${kind} job ${jobId}: ${err.message}`, "error");
    button.disabled = false;
  }
}

function isArmed(jobId) {
  const until = armed.get(jobId);
  return until !== undefined && until > Date.now();
}

function show(button, on) {
  button.textContent = on ? "Confirm cancel" : "Cancel";
  button.classList.toggle("armed", on);
}

/** A cancel or retry button for `jobId`. */
export function actionButton(kind, jobId) {
  const button = h(`button.btn.small.${kind === "cancel" ? "danger" : "secondary"}`, {
    type: "button", dataset: { action: kind, jobId }, text: kind === "cancel" ? "Cancel" : "Retry",
  });
  if (kind === "cancel" && isArmed(jobId)) {
    show(button, true);
    setTimeout(() => show(button, isArmed(jobId)), armed.get(jobId) - Date.now() + 10);
  }
  button.addEventListener("click", (e) => {
    e.stopPropagation();
    if (kind === "retry") {
      run(kind, jobId, button);
      return;
    }
    if (!isArmed(jobId)) {
      armed.set(jobId, Date.now() + CONFIRM_MS);
      show(button, true);
      setTimeout(() => show(button, isArmed(jobId)), CONFIRM_MS + 10);
      return;
    }
    armed.delete(jobId);
    show(button, false);
    run(kind, jobId, button);
  });
  return button;
}
