// Short notices in a corner: results of actions, and the hub's system alerts.

import { $, h } from "../util.js";

const TOAST_MS = 6000;

/** Show `text` for a few seconds; kind is "ok", "error" or "info". */
export function toast(text, kind = "info") {
  const box = $("#toasts");
  const node = h(`div.toast.${kind}`, { role: kind === "error" ? "alert" : "status", text });
  box.append(node);
  setTimeout(() => node.remove(), kind === "error" ? TOAST_MS * 2 : TOAST_MS);
}
