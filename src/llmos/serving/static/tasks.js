// The chat page's task picker: lists GET /v1/tasks, builds each task's option inputs, runs
// POST /v1/tasks/{task} and renders the structured result (table, label bars, quiz, highlighted answer).
// Loaded after app.js; uses its $, headers, showError, addMessage and setBusy.
"use strict";

const tasks = { list: {}, running: false };
// options the page sets itself or leaves to the task (a JSON schema, parsing switches)
const HIDDEN_OPTIONS = new Set(["top_k", "constrain", "return_full_text", "schema"]);
const PLACEHOLDERS = { fields: "name, city, age:integer", labels: "negative, positive", style: "formal, friendly…",
                       question: "What is asked about the text?" };
const INPUT_HINTS = { "question-answering": "Context: the text the answer is taken from",
                      extraction: "Text to extract the fields from", "sentiment-analysis": "Text to label" };

function currentTask() { return $("task").value; }

async function loadTasks() {
  try {
    const res = await fetch("/v1/tasks", { headers: headers() });
    if (!res.ok) return;  // a server without task routes: the page stays a chat page
    const body = await res.json();
    for (const task of body.data) {
      tasks.list[task.name] = task;
      if (task.name === "chat" || $("task").querySelector(`option[value="${task.name}"]`)) continue;
      const option = document.createElement("option");
      option.value = task.name;
      option.textContent = task.name;
      $("task").appendChild(option);
    }
  } catch (err) { /* the chat still works without the task list */ }
}

function labelled(name, control) {
  const label = document.createElement("label");
  label.htmlFor = control.id;
  label.textContent = name.replace(/_/g, " ");
  return [label, control];
}

function optionControl(task, name, value) {
  const choices = (task.choices || {})[name];
  let control;
  if (choices) {
    control = document.createElement("select");
    const values = value === null ? ["", ...choices] : choices;
    for (const choice of values) {
      const option = document.createElement("option");
      option.value = choice;
      option.textContent = choice || "(choose)";
      control.appendChild(option);
    }
    control.value = value === null ? "" : value;
  } else if (typeof value === "boolean") {
    control = document.createElement("input");
    control.type = "checkbox";
    control.checked = value;
  } else {
    control = document.createElement("input");
    control.type = typeof value === "number" ? "number" : "text";
    if (value !== null) control.value = value;
    control.placeholder = PLACEHOLDERS[name] || "";
  }
  control.id = "option-" + name;
  control.dataset.option = name;
  control.dataset.kind = typeof value;
  return control;
}

function showTaskOptions() {
  const box = $("task-options"), task = tasks.list[currentTask()];
  box.replaceChildren();
  const chat = !task || currentTask() === "chat";
  $("task-summary").hidden = chat;
  $("input").placeholder = chat ? "Type a message; Enter sends, Shift+Enter for a new line"
    : (INPUT_HINTS[currentTask()] || "Text for " + currentTask()) + "; Enter runs the task";
  if (chat) return;
  $("task-summary").textContent = task.summary;
  for (const field of task.fields.slice(1)) {  // inputs beyond the main text (a QA question)
    const control = document.createElement("input");
    control.type = "text";
    control.id = "field-" + field;
    control.dataset.field = field;
    control.placeholder = PLACEHOLDERS[field] || "";
    box.append(...labelled(field, control));
  }
  for (const [name, value] of Object.entries(task.options)) {
    if (!HIDDEN_OPTIONS.has(name)) box.append(...labelled(name, optionControl(task, name, value)));
  }
}

function taskRequest(text) {
  const task = tasks.list[currentTask()];
  const options = {};
  for (const control of $("task-options").querySelectorAll("[data-option]")) {
    const name = control.dataset.option;
    if (control.type === "checkbox") options[name] = control.checked;
    else if (control.value.trim() === "") continue;  // left empty: the task's default
    else if (control.type === "number") options[name] = Number(control.value);
    else options[name] = control.value.trim();
  }
  if ("top_k" in task.options) options.top_k = null;  // every label, for the bars
  if ($("max-tokens").dataset.touched) options.max_new_tokens = parseInt($("max-tokens").value, 10) || 128;
  let input = text;
  if (task.fields.length > 1) {
    input = { [task.fields[0]]: text };
    for (const control of $("task-options").querySelectorAll("[data-field]")) {
      input[control.dataset.field] = control.value.trim();
    }
  }
  return { input, options };
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function shown(value) { return typeof value === "string" ? value : JSON.stringify(value); }

function renderTable(result) {
  const table = el("table", "result-table");
  const head = table.createTHead().insertRow();
  head.append(el("th", "", "field"), el("th", "", "value"));
  const body = table.createTBody();
  for (const [field, value] of Object.entries(result)) {
    const row = body.insertRow();
    row.append(el("th", "", field), el("td", "", shown(value)));
  }
  return table;
}

function renderBars(labels) {
  const box = el("div", "label-bars");
  labels.forEach((item, i) => {
    const row = el("div", "label-bar" + (i === 0 ? " top" : ""));
    const track = el("div", "track"), fill = el("div", "fill");
    fill.style.width = (100 * item.score).toFixed(1) + "%";
    track.appendChild(fill);
    row.append(el("span", "label", item.label), track, el("span", "score", (100 * item.score).toFixed(1) + "%"));
    box.appendChild(row);
  });
  return box;
}

function renderQuiz(questions) {
  const list = el("ol", "quiz");
  for (const q of questions) {
    const item = el("li");
    item.append(el("div", "question", q.question), el("div", "answer", "✓ " + q.answer),
                el("div", "distractors", "✗ " + (q.distractors || []).join(" · ")));
    list.appendChild(item);
  }
  return list;
}

function renderAnswer(result, context) {
  const box = el("div");
  box.appendChild(el("div", "text", `Answer: ${result.answer}  (score ${result.score.toFixed(3)})`));
  const chars = Array.from(context);  // Python's offsets count code points, not UTF-16 units
  if (typeof context === "string" && chars.slice(result.start, result.end).join("") === result.answer) {
    const para = el("div", "qa-context");
    para.append(chars.slice(0, result.start).join(""), el("mark", "", result.answer),
                chars.slice(result.end).join(""));
    box.appendChild(para);
  }
  return box;
}

function renderText(result) {
  let item = result;
  while (Array.isArray(item) && item.length) item = item[0];
  if (item && typeof item === "object") {
    const key = Object.keys(item).find((k) => k.endsWith("_text"));
    let value = key ? item[key] : item;
    if (Array.isArray(value)) value = value[value.length - 1].content;  // a chat: the reply
    return el("div", "text", shown(value));
  }
  return el("div", "text", shown(item));
}

function renderResult(name, result, request) {
  if (name === "extraction" && result && typeof result === "object" && !Array.isArray(result)) {
    return renderTable(result);
  }
  if (name === "sentiment-analysis") return renderBars(Array.isArray(result[0]) ? result[0] : result);
  if (name === "quiz") return renderQuiz(result);
  if (name === "question-answering") return renderAnswer(result, request.input.context);
  return renderText(result);
}

async function runTask(text) {
  const name = currentTask();
  showError("");
  addMessage("user", text);
  const bubble = addMessage("assistant task", "");
  bubble.appendChild(el("div", "task-name", name + " · running…"));
  const request = taskRequest(text);
  tasks.running = true;
  setBusy(true);
  $("stop").disabled = true;  // a task runs to its end
  try {
    const res = await fetch("/v1/tasks/" + encodeURIComponent(name), {
      method: "POST", headers: headers(), body: JSON.stringify(request),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body.error ? body.error.message : res.status + " " + res.statusText);
    bubble.firstChild.textContent = `${name} · ${body.seconds.toFixed(2)} s`;
    bubble.appendChild(renderResult(name, body.result, request));
    const raw = el("details");
    raw.append(el("summary", "", "JSON"), el("pre", "", JSON.stringify(body.result, null, 2)));
    bubble.appendChild(raw);
    bubble.dataset.finish = "done";
  } catch (err) {
    bubble.firstChild.textContent = name + " · failed";
    bubble.dataset.finish = "error";
    showError(err.message);
  } finally {
    tasks.running = false;
    setBusy(false);
  }
  bubble.scrollIntoView({ block: "end" });
}

$("task").addEventListener("change", showTaskOptions);
$("max-tokens").addEventListener("input", () => { $("max-tokens").dataset.touched = "1"; });
loadTasks();
