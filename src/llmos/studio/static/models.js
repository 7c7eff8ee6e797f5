// LLMOS Studio page, Models tab: every model the studio can load (embedded, models folder, run
// checkpoints) with its evaluations, and an Evaluate form (POST /api/evaluate) whose result shows when
// the eval job ends (GET /api/evals/<name>). Listing the models reads every checkpoint's config (seconds
// on a first visit), so the table says "loading…" until the first answer.

import { $, bytes, el, fillPathLists, getJSON, number, postJSON, show } from "./api.js";

const POLL_MS = 1500;

/** One evaluation in a line: its task, numbers and data file, or its state while it runs or after it failed. */
function evalLine(report) {
  const numbers = Object.entries(report.metrics || {}).filter(([, v]) => typeof v === "number").slice(0, 4);
  const data = report.data ? " on " + report.data.split("/").pop() : "";
  const text = numbers.length
    ? `${numbers.map(([k, v]) => `${k} ${number(v, 4)}`).join(" · ")} (${report.task}${data})`
    : `${report.state || "…"}${report.message ? ": " + report.message : ""}`;
  return el("li", { "data-eval": report.name, "data-state": report.state || "" }, text);
}

function modelRow(model) {
  return el("tr", { "data-model": model.id },
    el("td", {}, el("strong", {}, model.name), el("br"), el("code", { class: "muted" }, model.id)),
    el("td", {}, model.source || "–"),
    el("td", { class: "num" }, bytes(model.size_bytes)),
    el("td", {}, model.architecture || "–"),
    el("td", {}, model.quantization || "none"),
    el("td", { class: "num" }, number(model.parameters)),
    el("td", {}, el("ul", { class: "plain evals" }, ...(model.evals || []).map(evalLine))),
    el("td", {}, el("button", { type: "button", class: "small", onclick: () => pick(model.id) }, "Evaluate")));
}

/** The table's one row while it has no models to show: "loading…", "no models found", ... */
function placeholder(text) {
  return el("tr", { class: "placeholder" }, el("td", { colspan: "8", class: "muted" }, text));
}

function pick(id) {
  $("eval-model").value = id;
  $("eval-data").focus();
}

async function refresh() {
  const { models } = await getJSON("/api/models");
  const chosen = $("eval-model").value;
  $("models-body").replaceChildren(...(models.length ? models.map(modelRow) : [placeholder("no models found")]));
  $("eval-model").replaceChildren(...models.map((m) => el("option", { value: m.id }, m.name)));
  if (chosen) $("eval-model").value = chosen;
}

/** Poll GET /api/evals/<name> until the evaluation ends; then show its numbers and refresh the table. */
async function watch(name, alive) {
  while (alive()) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    let report;
    try {
      report = await getJSON("/api/evals/" + name.split("/").map(encodeURIComponent).join("/"));
    } catch (err) {
      show($("eval-error"), err.message);
      return;
    }
    if (report.state === "running") continue;
    const box = $("eval-result");
    box.replaceChildren(`Evaluation ${name}: ${evalLine(report).textContent}`);
    box.dataset.state = report.state;
    box.hidden = false;
    await refresh().catch(() => {});
    return;
  }
}

export function showModels(selected) {
  let active = true;
  show($("eval-error"), "");
  fillPathLists();
  if (!$("models-body").querySelector("tr[data-model]")) $("models-body").replaceChildren(placeholder("loading…"));
  refresh().then(() => { if (selected) pick(selected); })
    .catch((err) => {
      show($("eval-error"), "Could not list models: " + err.message);
      if (!$("models-body").querySelector("tr[data-model]")) $("models-body").replaceChildren(placeholder("–"));
    });
  $("eval-form").onsubmit = async (event) => {
    event.preventDefault();
    show($("eval-error"), "");
    show($("eval-result"), "");
    const model = $("eval-model").value;
    try {
      const started = await postJSON("/api/evaluate", { model, data: $("eval-data").value.trim() });
      show($("eval-result"), `Evaluating… (${started.eval})`);
      $("eval-result").dataset.state = "running";
      watch(started.eval, () => active);
    } catch (err) {
      show($("eval-error"), err.message);
    }
  };
  return () => { active = false; };
}
