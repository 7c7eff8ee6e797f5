// LLMOS Studio page, Playground tab: one prompt, two models side by side. "Run both" sends two
// POST /api/generate requests at once and streams each SSE answer into its column, with tokens/s under it.

import { $, el, getJSON, readEvents, request, show } from "./api.js";

let loaded = false;
let running = null;  // the AbortController of the generation in flight

/** An input for a task's extra input field or option, typed by its default (choices -> a select). */
function taskInput(name, defaultValue, choices) {
  const id = "task-" + name;
  let node;
  if (choices) {
    const blank = defaultValue === null ? [el("option", { value: "" }, "–")] : [];
    node = el("select", { id }, ...blank, ...choices.map((c) => el("option", { value: c, selected: c === defaultValue }, c)));
  } else if (typeof defaultValue === "boolean") {
    node = el("input", { id, type: "checkbox", checked: defaultValue });
  } else if (typeof defaultValue === "number") {
    node = el("input", { id, type: "number", value: String(defaultValue) });
  } else {
    node = el("input", { id, type: "text", value: defaultValue ?? "", placeholder: defaultValue === null ? "(none)" : null });
  }
  node.dataset.name = name;
  node.dataset.kind = typeof defaultValue;
  return [el("label", { for: id }, name.replaceAll("_", " ")), node];
}

function renderTaskOptions(tasks) {
  const task = tasks.find((t) => t.name === $("play-task").value);
  $("task-summary").textContent = task ? task.summary : "";
  if (!task) {
    $("task-options").replaceChildren();
    return;
  }
  const inputs = task.fields.slice(1).map((name) => taskInput(name, "", null));
  const options = Object.entries(task.options).map(([name, value]) => taskInput(name, value, task.choices[name]));
  $("task-options").replaceChildren(...inputs.flat(), ...options.flat());
}

/** The task's extra inputs and options from the page; text that looks like JSON is sent as JSON. */
function taskOptions() {
  const options = {};
  for (const node of $("task-options").querySelectorAll("[data-name]")) {
    const name = node.dataset.name;
    if (node.type === "checkbox") options[name] = node.checked;
    else if (node.value === "") continue;
    else if (node.dataset.kind === "number") options[name] = Number(node.value);
    else if (/^\s*[[{]/.test(node.value)) {
      try {
        options[name] = JSON.parse(node.value);
      } catch {
        options[name] = node.value;
      }
    } else options[name] = node.value;
  }
  return options;
}

async function load(selected) {
  const [{ models }, { tasks, sampling }] = await Promise.all([getJSON("/api/models"), getJSON("/api/tasks")]);
  if (sampling) {  // what a sampled request gets for the settings left blank (the model's own may differ)
    $("top-p").placeholder = `${sampling.top_p} when sampling`;
    $("top-k").placeholder = `${sampling.top_k} when sampling`;
  }
  for (const [side, index] of [["a", 0], ["b", 1]]) {
    const picker = $("model-" + side);
    const kept = picker.value;
    picker.replaceChildren(...models.map((m) => el("option", { value: m.id }, `${m.name} (${m.source})`)));
    picker.value = kept || (models[Math.min(index, models.length - 1)] || {}).id || "";
  }
  if (selected) $("model-a").value = selected;
  if (!loaded) {
    $("play-task").replaceChildren(el("option", { value: "" }, "auto"),
      ...tasks.map((t) => el("option", { value: t.name }, t.name)));
    $("play-task").onchange = () => renderTaskOptions(tasks);
    renderTaskOptions(tasks);
    loaded = true;
  }
}

/** The shared request body, or null (with the reason shown) when the JSON schema is not valid JSON. */
function body() {
  const schemaText = $("json-schema").value.trim();
  let schema = null;
  if (schemaText) {
    try {
      schema = JSON.parse(schemaText);
    } catch (err) {
      show($("error-json-schema"), "The JSON schema is not valid JSON: " + err.message);
      return null;
    }
    if (typeof schema !== "object" || Array.isArray(schema) || schema === null) {
      show($("error-json-schema"), "The JSON schema must be a JSON object");
      return null;
    }
  }
  const given = (id) => ($(id).value.trim() === "" ? null : Number($(id).value));  // null: the server's default
  return {
    prompt: $("prompt").value, task: $("play-task").value || null,
    max_new_tokens: Number($("max-new-tokens").value), temperature: given("temperature"),
    top_p: given("top-p"), top_k: given("top-k"), seed: Number($("seed").value),
    json_schema: schema, ...taskOptions(),
  };
}

async function generate(side, payload, signal) {
  const out = $("output-" + side), stats = $("stats-" + side);
  out.textContent = "";
  out.classList.add("streaming");
  delete out.dataset.done;
  stats.textContent = "";
  try {
    const res = await request("/api/generate", { method: "POST", body: payload, signal });
    for await (const { data } of readEvents(res)) {
      if (data.error) throw new Error(data.error.message);
      if (data.done) {
        out.textContent = data.text;
        stats.textContent = data.tokens
          ? `${data.tokens} tokens in ${data.seconds.toFixed(2)} s · ${data.tokens_per_second.toFixed(1)} tokens/s`
          : `scored in ${data.seconds.toFixed(2)} s`;  // a task that scores labels writes no tokens
        if (data.cut) stats.textContent += " · cut at max new tokens";
        out.dataset.done = "true";
      } else if (data.text !== undefined) {
        out.textContent += data.text;
      }
    }
  } catch (err) {
    if (err.name !== "AbortError") {
      stats.textContent = "";
      out.append(el("span", { class: "error-text", "data-testid": "generate-error" }, err.message));
      out.dataset.done = "error";
    }
  } finally {
    out.classList.remove("streaming");
  }
}

async function runBoth() {
  show($("play-error"), "");
  show($("error-json-schema"), "");
  if (running) {
    running.abort();
    return;
  }
  const shared = body();
  if (!shared) return;
  if (!shared.prompt.trim()) {
    show($("play-error"), "Write a prompt first.");
    return;
  }
  running = new AbortController();
  $("play-run").textContent = "Stop";
  try {
    await Promise.all(["a", "b"].map((side) =>
      generate(side, { ...shared, model: $("model-" + side).value }, running.signal)));
  } finally {
    running = null;
    $("play-run").textContent = "Run both";
  }
}

$("play-run").addEventListener("click", runBoth);
$("prompt").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) runBoth();
});

export function showPlayground(selected) {
  load(selected).catch((err) => show($("play-error"), "Could not load models or tasks: " + err.message));
  return () => {};
}
