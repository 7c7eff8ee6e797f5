// LLMOS Studio page, Models tab: every model the studio can load (embedded, models folder, run
// checkpoints) with its evaluations, and an Evaluate form (POST /api/evaluate) whose result shows when
// the eval job's report lands in the model's "evals".

import { $, bytes, el, fillPathLists, getJSON, number, postJSON, show } from "./api.js";

const POLL_MS = 1500;

function evalSummary(report) {
  const parts = [];
  for (const key of ["loss", "val_loss", "perplexity", "accuracy"]) {
    if (typeof report[key] === "number") parts.push(`${key} ${number(report[key], 4)}`);
  }
  if (!parts.length) parts.push(report.state || "…");
  const where = report.data ? " on " + report.data.split("/").pop() : "";
  return el("li", { "data-eval": report.name || "" }, parts.join(", ") + where);
}

function modelRow(model) {
  return el("tr", { "data-model": model.id },
    el("td", {}, el("strong", {}, model.name), el("br"), el("code", { class: "muted" }, model.id)),
    el("td", {}, model.source || "–"),
    el("td", { class: "num" }, bytes(model.size_bytes)),
    el("td", {}, model.architecture || "–"),
    el("td", {}, model.quantization || "none"),
    el("td", { class: "num" }, number(model.parameters)),
    el("td", {}, el("ul", { class: "plain evals" }, ...(model.evals || []).map(evalSummary))),
    el("td", {}, el("button", { type: "button", class: "small", onclick: () => pick(model.id) }, "Evaluate")));
}

function pick(id) {
  $("eval-model").value = id;
  $("eval-data").focus();
}

let models = [];

async function refresh() {
  ({ models } = await getJSON("/api/models"));
  const chosen = $("eval-model").value;
  $("models-body").replaceChildren(...models.map(modelRow));
  $("eval-model").replaceChildren(...models.map((m) => el("option", { value: m.id }, m.name)));
  if (chosen) $("eval-model").value = chosen;
}

/** Poll the models until the model's evals hold `name` with a final state; then show it. */
async function watch(modelId, name, alive) {
  while (alive()) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    await refresh().catch(() => {});
    const model = models.find((m) => m.id === modelId);
    const report = model && (model.evals || []).find((r) => r.name === name);
    if (report && report.state !== "running") {
      const box = $("eval-result");
      box.replaceChildren(`Evaluation of ${model.name}: `, evalSummary(report).textContent);
      box.hidden = false;
      box.dataset.state = report.state || "finished";
      if (report.message) box.append(" (" + report.message + ")");
      return;
    }
  }
}

export function showModels(selected) {
  let active = true;
  show($("eval-error"), "");
  fillPathLists();
  refresh().then(() => { if (selected) pick(selected); })
    .catch((err) => show($("eval-error"), "Could not list models: " + err.message));
  $("eval-form").onsubmit = async (event) => {
    event.preventDefault();
    show($("eval-error"), "");
    show($("eval-result"), "");
    const model = $("eval-model").value;
    try {
      const started = await postJSON("/api/evaluate", { model, data: $("eval-data").value.trim() });
      show($("eval-result"), `Evaluating… (${started.eval})`);
      $("eval-result").dataset.state = "running";
      watch(model, started.eval, () => active);
    } catch (err) {
      show($("eval-error"), err.message);
    }
  };
  return () => { active = false; };
}
