// LLMOS Studio page, Runs tab: the list of runs (polled) and one run's view, followed live through
// /api/runs/{name}/events (loss and validation curves, status, job log, "gone" when the folder is deleted).

import { $, ago, badge, duration, el, getJSON, number, percent, postJSON, readEvents, request, show } from "./api.js";

const POLL_MS = 2000;
const LOG_CHARS = 20000;  // the page keeps the log's last this many characters

// ---- the list ----------------------------------------------------------------------------------

function runRow(run) {
  const step = run.max_steps ? `${run.step ?? 0} / ${run.max_steps}` : number(run.step);
  return el("tr", { "data-run": run.name },
    el("td", {}, el("a", { href: "#run/" + encodeURIComponent(run.name) }, run.name)),
    el("td", {}, run.verb || "–"),
    el("td", {}, badge(run.state)),
    el("td", { class: "num", "data-testid": "step" }, step),
    el("td", { class: "num", "data-testid": "loss" }, number(run.loss)),
    el("td", { class: "num", "data-testid": "val-loss" }, number(run.val_loss)),
    el("td", { class: "num" }, number(run.tokens_per_second)),
    el("td", { class: "num" }, percent(run.mfu)),
    el("td", { class: "num" }, run.state === "running" ? duration(run.eta_s) : "–"),
    el("td", { class: "muted" }, ago(run.updated)));
}

export function listRuns() {
  let timer = null, active = true;
  const refresh = async () => {
    try {
      const { runs } = await getJSON("/api/runs");
      if (!active) return;
      $("runs-body").replaceChildren(...runs.map(runRow));
      $("runs-empty").hidden = runs.length > 0;
      show($("runs-error"), "");
    } catch (err) {
      if (!active) return;
      show($("runs-error"), "Could not list runs: " + err.message);
    }
    timer = setTimeout(refresh, POLL_MS);
  };
  refresh();
  return () => {
    active = false;
    clearTimeout(timer);
  };
}

// ---- one run -----------------------------------------------------------------------------------

function chartLayout() {
  return {
    margin: { l: 50, r: 20, t: 10, b: 40 }, height: 320,
    xaxis: { title: { text: "step" } }, yaxis: { title: { text: "loss" } },
    legend: { orientation: "h", y: 1.08 }, paper_bgcolor: "#fff", plot_bgcolor: "#fff",
  };
}

/** Plots metric records in batches, one Plotly.extendTraces per animation frame. */
class LossChart {
  constructor(node) {
    this.node = node;
    this.pending = null;
    Plotly.newPlot(node, [
      { x: [], y: [], name: "train loss", mode: "lines", line: { color: "#2f6fed" } },
      { x: [], y: [], name: "validation loss", mode: "lines+markers", line: { color: "#c2410c" } },
    ], chartLayout(), { responsive: true, displaylogo: false });
  }

  add(record) {
    this.pending ??= { x: [[], []], y: [[], []] };
    if (record.kind === "eval" && record.val_loss !== undefined) {
      this.pending.x[1].push(record.step);
      this.pending.y[1].push(record.val_loss);
    } else if (record.kind !== "eval" && record.loss !== undefined) {
      this.pending.x[0].push(record.step);
      this.pending.y[0].push(record.loss);
    } else return;
    if (this.pending.frame === undefined) this.pending.frame = requestAnimationFrame(() => this.flush());
  }

  flush() {
    const { x, y } = this.pending;
    this.pending = null;
    Plotly.extendTraces(this.node, { x, y }, [0, 1]);
    this.node.dataset.points = String(this.node.data[0].x.length + this.node.data[1].x.length);
  }

  clear() {
    if (this.pending) cancelAnimationFrame(this.pending.frame);
    this.pending = null;
    Plotly.restyle(this.node, { x: [[], []], y: [[], []] });
    this.node.dataset.points = "0";
  }
}

function showSummary(run) {
  $("run-state").replaceWith(Object.assign(badge(run.state), { id: "run-state" }));
  $("run-stop").disabled = run.state !== "running";
  $("run-resume").disabled = run.state === "running" || run.state === "stopping";
  const stats = [
    ["Kind", run.verb || "–"],
    ["Step", run.max_steps ? `${run.step ?? 0} / ${run.max_steps}` : number(run.step)],
    ["Loss", number(run.loss)], ["Val loss", number(run.val_loss)],
    ["Tokens/s", number(run.tokens_per_second)], ["MFU", percent(run.mfu)],
    ["ETA", run.state === "running" ? duration(run.eta_s) : "–"], ["Started", ago(run.started)],
  ];
  $("run-stats").replaceChildren(...stats.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { "data-stat": k }, v)]));
  const links = (run.checkpoints || []).map((c) => el("li", { "data-checkpoint": c },
    el("code", {}, c), " ",
    el("a", { href: "#models/" + encodeURIComponent(`runs:${run.name}/${c}`) }, "evaluate"), " · ",
    el("a", { href: "#playground/" + encodeURIComponent(`runs:${run.name}/${c}`) }, "try in the playground")));
  $("run-checkpoints").replaceChildren(...(links.length ? links : [el("li", { class: "muted" }, "none yet")]));
  if (run.message) show($("run-message"), run.message);
  $("run-message").classList.toggle("error", run.state === "failed" || run.state === "interrupted");
}

function showRecipe(recipe) {
  const rows = Object.entries(recipe || {}).map(([k, v]) =>
    el("tr", {}, el("th", {}, k), el("td", {}, typeof v === "object" ? JSON.stringify(v) : String(v))));
  $("run-recipe").replaceChildren(...rows);
}

function appendLog(text, replace = false) {
  const log = $("run-log");
  const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.textContent = ((replace ? "" : log.textContent) + text).slice(-LOG_CHARS);
  if (stick) log.scrollTop = log.scrollHeight;
}

async function follow(name, chart, signal) {
  while (!signal.aborted) {
    try {
      const res = await request(`/api/runs/${encodeURIComponent(name)}/events`, { signal });
      chart.clear();
      let firstLog = true;
      for await (const { event, data } of readEvents(res)) {
        if (event === "metric") chart.add(data);
        else if (event === "reset") chart.clear();  // a resumed run rewrote metrics.jsonl
        else if (event === "status") showSummary(data);
        else if (event === "log") {
          appendLog(data.text ?? data, firstLog);
          firstLog = false;
        } else if (event === "gone") {
          gone(name);
          return;
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      if (err.status === 404) {
        gone(name);
        return;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));  // the studio restarted: reconnect
  }
}

function gone(name) {
  show($("run-gone"), `The run folder '${name}' was deleted; this run no longer exists.`);
  $("run-stop").disabled = true;
  $("run-resume").disabled = true;
}

async function act(name, verb) {
  show($("run-message"), "");
  try {
    const run = await postJSON(`/api/runs/${encodeURIComponent(name)}/${verb}`, {});
    showSummary(run);
    show($("run-message"), verb === "stop" ? "Stopping: the trainer saves 'last' and exits." : "Resumed from 'last'.");
  } catch (err) {
    show($("run-message"), err.message);
  }
}

export function showRun(name) {
  const controller = new AbortController();
  $("run-name").textContent = name;
  show($("run-gone"), "");
  show($("run-message"), "");
  $("run-log").textContent = "";
  $("run-stats").replaceChildren();
  $("run-recipe").replaceChildren();
  $("run-stop").onclick = () => act(name, "stop");
  $("run-resume").onclick = () => act(name, "resume");
  const chart = new LossChart($("loss-chart"));
  getJSON(`/api/runs/${encodeURIComponent(name)}`, { signal: controller.signal }).then((run) => {
    showSummary(run);
    showRecipe(run.recipe);
    if (run.log_tail && !$("run-log").textContent) appendLog(run.log_tail, true);
  }).catch((err) => {
    if (err.status === 404) gone(name);
    else if (!controller.signal.aborted) show($("run-message"), err.message);
  });
  follow(name, chart, controller.signal);
  return () => {
    controller.abort();
    Plotly.purge($("loss-chart"));
  };
}
