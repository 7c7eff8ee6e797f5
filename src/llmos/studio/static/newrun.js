// LLMOS Studio page, New run tab: the form generated from GET /api/recipes (one input per recipe field,
// typed by the field's type, the key fields first and the rest folded away), started with POST /api/runs.
// A refused start shows the server's message next to the field it names, or on top; nothing is cleared.

import { $, el, fillPathLists, getJSON, postJSON, show } from "./api.js";

let recipes = null;  // {"pretrain": [field...], "finetune": [field...]}
const PATH_FIELDS = new Set(["data_dir", "data", "val_data"]);

function input(field) {
  const id = "field-" + field.name;
  const common = { id, name: field.name, "data-type": field.type };
  if (field.choices) {
    return el("select", common, ...field.choices.map((c) =>
      el("option", { value: String(c), selected: c === field.default }, String(c))));
  }
  if (field.type === "bool") return el("input", { ...common, type: "checkbox", checked: Boolean(field.default) });
  if (field.type === "dict") {
    return el("textarea", { ...common, rows: "2", placeholder: "{}" },
      field.default && Object.keys(field.default).length ? JSON.stringify(field.default) : "");
  }
  if (field.type === "int" || field.type === "float") {
    return el("input", { ...common, type: "number", step: field.type === "int" ? "1" : "any",
                         value: String(field.default ?? "") });
  }
  const list = PATH_FIELDS.has(field.name) ? "data-paths" : field.name === "base_model" ? "model-ids" : null;
  return el("input", { ...common, type: "text", value: String(field.default ?? ""), list, autocomplete: "off" });
}

function fieldBox(field) {
  const box = el("div", { class: "field" + (field.type === "bool" ? " check" : ""), "data-field": field.name },
    el("label", { for: "field-" + field.name }, field.name), input(field));
  if (field.help) {  // the dataclass comment; `quoted` names become code
    const parts = field.help.split("`").map((part, i) => (i % 2 ? el("code", {}, part) : part));
    box.append(el("small", { class: "help" }, ...parts));
  }
  box.append(el("small", { class: "field-error", id: "error-" + field.name, hidden: true }));
  return box;
}

function verb() {
  return $("verb-finetune").checked ? "finetune" : "pretrain";
}

const built = {};  // verb -> {main, advanced}: each recipe's field boxes, built once so typed values survive a toggle

function render() {
  const fields = recipes[verb()];
  built[verb()] ??= {
    main: fields.filter((f) => f.group === "main").map(fieldBox),
    advanced: fields.filter((f) => f.group !== "main").map(fieldBox),
  };
  $("main-fields").replaceChildren(...built[verb()].main);
  $("advanced-fields").replaceChildren(...built[verb()].advanced);
  clearErrors();
}

function clearErrors() {
  show($("new-error"), "");
  for (const box of document.querySelectorAll("#new-form .field-error")) show(box, "");
  for (const box of document.querySelectorAll("#new-form .field.invalid")) box.classList.remove("invalid");
}

/** Show a message next to the named field (opening "Advanced" if it is there), else on top. */
function fieldError(name, message) {
  const box = name && $("error-" + name);
  if (!box) {
    show($("new-error"), message);
    $("new-error").scrollIntoView({ block: "nearest" });
    return;
  }
  show(box, message);
  const field = box.closest(".field");
  field.classList.add("invalid");
  if (field.closest("details")) field.closest("details").open = true;
  field.scrollIntoView({ block: "nearest" });
}

function value(field) {
  const node = $("field-" + field.name);
  if (field.type === "bool") return node.checked;
  const text = node.value.trim();
  if (field.type === "int" || field.type === "float") {
    if (text === "" || Number.isNaN(Number(text))) throw [field.name, `${field.name} needs a number`];
    return Number(text);
  }
  if (field.type === "dict") {
    if (!text) return {};
    try {
      return JSON.parse(text);
    } catch {
      throw [field.name, `${field.name} must be a JSON object, e.g. {"d_model": 128}`];
    }
  }
  if (field.choices) return field.choices.find((c) => String(c) === node.value) ?? node.value;
  return node.value;
}

async function start(event) {
  event.preventDefault();
  clearErrors();
  const name = $("field-name").value.trim();
  let fields;
  try {
    fields = Object.fromEntries(recipes[verb()].map((f) => [f.name, value(f)]));
  } catch (problem) {
    if (!Array.isArray(problem)) throw problem;
    fieldError(problem[0], problem[1]);
    return;
  }
  $("new-start").disabled = true;
  try {
    const run = await postJSON("/api/runs", { verb: verb(), name, fields });
    location.hash = "#run/" + encodeURIComponent(run.name);
  } catch (err) {
    fieldError(err.field, err.message);
  } finally {
    $("new-start").disabled = false;
  }
}

export function newRun() {
  const ready = recipes ? Promise.resolve() : getJSON("/api/recipes").then((r) => {
    recipes = r;
    render();
  });
  ready.catch((err) => show($("new-error"), "Could not load the recipe fields: " + err.message));
  fillPathLists();
  return () => {};
}

$("verb-pretrain").addEventListener("change", () => recipes && render());
$("verb-finetune").addEventListener("change", () => recipes && render());
$("new-form").addEventListener("submit", start);
