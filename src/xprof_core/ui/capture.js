// The "Capture profile" dialog: asks the aggregator's capture_profile route to record a
// profile from a running program's profiler server, and shows its JSON answer or error.

import { apiUrl, fetchJson } from "./api.js";
import { h, replaceChildren } from "./dom.js";

/**
 * Wire the button and dialog of index.html.
 * @param {{hidden: boolean, onCaptured: () => void}} options hidden: the server's hideCaptureProfileButton
 */
export function initCaptureDialog({ hidden, onCaptured }) {
  const button = document.getElementById("capture-button");
  const dialog = document.getElementById("capture-dialog");
  const form = document.getElementById("capture-form");
  const result = document.getElementById("capture-result");
  const submit = document.getElementById("capture-submit");
  const cancel = document.getElementById("capture-cancel");
  button.hidden = hidden;
  if (hidden) return;
  let controller = null;

  button.addEventListener("click", () => {
    result.hidden = true;
    replaceChildren(result);
    dialog.showModal();
    form.elements.service_addr.focus();
  });
  cancel.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => {
    if (controller) controller.abort();
    button.focus();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!form.reportValidity()) return;
    const params = {
      service_addr: form.elements.service_addr.value.trim(),
      duration: form.elements.duration.value,
    };
    controller = new AbortController();
    submit.disabled = true;
    result.hidden = false;
    replaceChildren(result, h("p.muted", { text: `Capturing ${params.duration} ms from ${params.service_addr}…` }));
    try {
      const answer = await fetchJson(apiUrl("capture_profile", params), { signal: controller.signal });
      const failed = answer && typeof answer.error === "string" && answer.error;
      replaceChildren(result,
        h(failed ? "p.error-message" : "p", { text: failed ? `Capture failed: ${answer.error}` : "Capture finished." }),
        h("pre.capture-json", { text: JSON.stringify(answer, null, 2) }));
      result.dataset.outcome = failed ? "error" : "ok";
      if (!failed) onCaptured();
    } catch (err) {
      if (err.name === "AbortError") return;
      replaceChildren(result, h("div.error-panel", { role: "alert" },
        h("p.error-message", { text: `Capture failed: ${err.message}` }),
        err.status ? h("p.muted", { text: `HTTP ${err.status} from ${err.url}` }) : null));
      result.dataset.outcome = "error";
    } finally {
      submit.disabled = false;
      controller = null;
    }
  });
}
