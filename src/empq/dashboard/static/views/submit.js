// The submit form: presets per job type, and JSON editors for the payload and the
// requirements that validate as you type. The hub validates again; its 422 reply
// names every bad field and is shown under the form.

import { api } from "../api.js";
import { store } from "../store.js";
import { $, h, mount, pretty } from "../util.js";
import { toast } from "./toast.js";

const COMFY_WORKFLOW = {
  3: { class_type: "KSampler", inputs: { seed: 42, steps: 20, cfg: 7, sampler_name: "euler", scheduler: "normal", denoise: 1, model: ["4", 0], positive: ["6", 0], negative: ["7", 0], latent_image: ["5", 0] } },
  4: { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: "sd_xl_base_1.0.safetensors" } },
  5: { class_type: "EmptyLatentImage", inputs: { width: 1024, height: 1024, batch_size: 1 } },
  6: { class_type: "CLIPTextEncode", inputs: { text: "a lighthouse at dawn, oil painting", clip: ["4", 1] } },
  7: { class_type: "CLIPTextEncode", inputs: { text: "blurry", clip: ["4", 1] } },
  8: { class_type: "VAEDecode", inputs: { samples: ["3", 0], vae: ["4", 2] } },
  9: { class_type: "SaveImage", inputs: { filename_prefix: "empq", images: ["8", 0] } },
};

/** Presets: the fields a job of each kind usually needs (CONTRACT §6 payloads). */
export const PRESETS = {
  simulation: {
    label: "Simulation (test job)", type: "simulation", priority: 50,
    requirements: { service_type: "simulation" }, payload: { duration: 5, steps: 10 },
  },
  comfyui: {
    label: "ComfyUI text to image", type: "text_to_image", priority: 50,
    requirements: { service_type: "comfyui", timeout_minutes: 10 }, payload: { workflow: COMFY_WORKFLOW },
  },
  a1111: {
    label: "A1111 txt2img", type: "text_to_image", priority: 50,
    requirements: { service_type: "a1111" },
    payload: { endpoint: "txt2img", prompt: "a lighthouse at dawn, oil painting", negative_prompt: "blurry", steps: 20, width: 512, height: 512, cfg_scale: 7, sampler_name: "Euler a", seed: -1 },
  },
  custom: { label: "Custom", type: "", priority: 50, requirements: {}, payload: {} },
};

/** Parse an editor's text as a JSON object; returns {value} or {error}. */
export function parseObject(text, name) {
  if (!text.trim()) return { value: {} };
  try {
    const value = JSON.parse(text);
    if (value === null || typeof value !== "object" || Array.isArray(value)) return { error: `${name} must be a JSON object` };
    return { value };
  } catch (err) {
    const m = /position (\d+)/.exec(err.message);
    if (m) {
      const upto = text.slice(0, Number(m[1]));
      const line = upto.split("\n").length;
      const col = Number(m[1]) - upto.lastIndexOf("\n");
      return { error: `${name}: invalid JSON at line ${line}, column ${col}` };
    }
    return { error: `${name}: invalid JSON (${err.message})` };
  }
}

function validate() {
  const errors = [];
  const type = $("#submit-type").value.trim();
  if (!type) errors.push("type: required");
  const prio = $("#submit-priority").value;
  if (prio === "" || !Number.isInteger(Number(prio)) || Number(prio) < 0 || Number(prio) > 100) errors.push("priority: a whole number from 0 to 100");
  const retries = $("#submit-retries").value;
  if (retries === "" || !Number.isInteger(Number(retries)) || Number(retries) < 0) errors.push("max_retries: a whole number ≥ 0");
  const payload = parseObject($("#submit-payload").value, "payload");
  const requirements = parseObject($("#submit-requirements").value, "requirements");
  $("#submit-payload").classList.toggle("invalid", Boolean(payload.error));
  $("#submit-requirements").classList.toggle("invalid", Boolean(requirements.error));
  if (payload.error) errors.push(payload.error);
  if (requirements.error) errors.push(requirements.error);
  const submission = { type, priority: Number(prio), max_retries: Number(retries), payload: payload.value, requirements: requirements.value };
  const customer = $("#submit-customer").value.trim();
  if (customer) submission.customer_id = customer;
  return { errors, submission };
}

function showErrors(lines) {
  const box = $("#submit-errors");
  box.hidden = lines.length === 0;
  mount(box, lines.map((l) => h("li", { text: l })));
  $("#submit-go").disabled = lines.length > 0;
}

function applyPreset(name) {
  const p = PRESETS[name];
  $("#submit-type").value = p.type;
  $("#submit-priority").value = String(p.priority);
  $("#submit-payload").value = pretty(p.payload);
  $("#submit-requirements").value = pretty(p.requirements);
  showErrors(validate().errors);
}

async function submit(e) {
  e.preventDefault();
  const { errors, submission } = validate();
  showErrors(errors);
  if (errors.length) return;
  $("#submit-go").disabled = true;
  try {
    const fetchedAt = performance.now();
    const reply = await api.submitJob(submission);
    const warnings = Array.isArray(reply.warnings) ? reply.warnings : [];
    toast(`Submitted ${reply.job_id} (position ${reply.position ?? "?"})${warnings.length ? ` — ${warnings.join("; ")}` : ""}`, warnings.length ? "error" : "ok");
    store.mergeJob({ id: reply.job_id, status: reply.status, position: reply.position, created_at: reply.created_at, ...submission, progress: 0 }, { fetchedAt });
    $("#submit-dialog").close();
  } catch (err) {
    const fields = typeof err.fieldErrors === "function" ? err.fieldErrors() : [];
    showErrors(fields.length ? fields : [err.message]);
    $("#submit-go").disabled = false;
  }
}

export function initSubmit() {
  mount($("#submit-preset"), Object.entries(PRESETS).map(([k, p]) => h("option", { value: k, text: p.label })));
  $("#submit-preset").addEventListener("change", (e) => applyPreset(e.target.value));
  $("#submit-form").addEventListener("input", () => showErrors(validate().errors));
  $("#submit-form").addEventListener("submit", submit);
  $("#submit-cancel").addEventListener("click", () => $("#submit-dialog").close());
  $("#open-submit").addEventListener("click", () => {
    $("#submit-dialog").showModal();
    $("#submit-type").focus();
  });
  applyPreset("simulation");
}
