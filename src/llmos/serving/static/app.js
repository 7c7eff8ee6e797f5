// The LLMOS chat page: streams answers from /v1/chat/completions (SSE), keeps the history in memory.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { model: null, history: [], controller: null };

function bindSlider(id) {
  const input = $(id), out = $(id + "-value");
  input.addEventListener("input", () => { out.textContent = input.value; });
}
bindSlider("temperature");
bindSlider("top-p");

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function addMessage(role, text) {
  const div = document.createElement("div");
  div.className = "message " + role;
  div.textContent = text;
  $("messages").appendChild(div);
  div.scrollIntoView({ block: "end" });
  return div;
}

async function loadModel() {
  try {
    const res = await fetch("/v1/models", { headers: headers() });
    const body = await res.json();
    if (!res.ok) throw new Error(body.error ? body.error.message : res.statusText);
    showDefaults(body.data[0].defaults);
    state.model = body.data[0].id;
    $("model-name").textContent = "model: " + state.model;
  } catch (err) {
    $("model-name").textContent = "model unavailable";
    showError("Could not list models: " + err.message);
  }
}

// The server's defaults for this model (its generation_config, else LLMOS's measured chat defaults)
// become the settings' starting values, and are shown under them.
const SETTINGS = { temperature: "temperature", top_p: "top-p", top_k: "top-k",
                   repetition_penalty: "repetition-penalty", max_tokens: "max-tokens" };
function showDefaults(defaults) {
  if (!defaults || state.defaultsShown) return;
  state.defaultsShown = true;
  for (const [name, id] of Object.entries(SETTINGS)) {
    if (defaults[name] === undefined) continue;
    $(id).value = defaults[name];
    if ($(id + "-value")) $(id + "-value").textContent = defaults[name];
  }
  $("defaults").textContent = "model defaults: " + Object.entries(defaults)
    .map(([name, value]) => name.replace(/_/g, " ") + " " + value).join(", ");
}

function number(id, parse, fallback) {
  const value = parse($(id).value);
  return Number.isFinite(value) ? value : fallback;
}

function setBusy(busy) {
  $("send").disabled = busy;
  $("stop").disabled = !busy;
}

async function send(text) {
  showError("");
  if (!state.model) await loadModel();
  state.history.push({ role: "user", content: text });
  addMessage("user", text);
  const bubble = addMessage("assistant", "");
  bubble.classList.add("streaming");
  const messages = [];
  const system = $("system-prompt").value.trim();
  if (system) messages.push({ role: "system", content: system });
  messages.push(...state.history);
  const body = {
    model: state.model, messages, stream: true,
    temperature: number("temperature", parseFloat, null), top_p: number("top-p", parseFloat, null),
    top_k: number("top-k", (v) => parseInt(v, 10), null),
    repetition_penalty: number("repetition-penalty", parseFloat, null),
    max_tokens: number("max-tokens", (v) => parseInt(v, 10), null),
  };  // null: the server's default
  state.controller = new AbortController();
  setBusy(true);
  let answer = "", finish = null;
  try {
    const res = await fetch("/v1/chat/completions", {
      method: "POST", headers: headers(), body: JSON.stringify(body), signal: state.controller.signal,
    });
    if (!res.ok) {
      const err = await res.json().catch(() => ({}));
      throw new Error(err.error ? err.error.message : res.status + " " + res.statusText);
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const line = buffer.slice(0, cut).trim();
        buffer = buffer.slice(cut + 2);
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        for (const choice of chunk.choices) {
          if (choice.delta && choice.delta.content) {
            answer += choice.delta.content;
            bubble.textContent = answer;
            bubble.scrollIntoView({ block: "end" });
          }
          if (choice.finish_reason) finish = choice.finish_reason;
        }
      }
    }
  } catch (err) {
    if (err.name === "AbortError") finish = "stopped";
    else showError(err.message);
  } finally {
    bubble.classList.remove("streaming");
    setBusy(false);
    state.controller = null;
  }
  bubble.textContent = answer;
  if (finish) {
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = finish;
    bubble.appendChild(meta);
  }
  bubble.dataset.finish = finish || "error";
  state.history.push({ role: "assistant", content: answer });
}

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("input").value.trim();
  if (!text || state.controller || (typeof tasks !== "undefined" && tasks.running)) return;
  $("input").value = "";
  if (typeof runTask !== "undefined" && $("task").value !== "chat") runTask(text);  // tasks.js
  else send(text);
});
$("input").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
});
$("stop").addEventListener("click", () => { if (state.controller) state.controller.abort(); });
$("reset").addEventListener("click", () => {
  if (state.controller) state.controller.abort();
  state.history = [];
  $("messages").replaceChildren();
  showError("");
});
loadModel();
