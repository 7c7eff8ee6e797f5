// LLMOS Studio page: talking to the studio's API (JSON requests, SSE streams read from fetch bodies),
// the API-key box a 401 opens, and the small formatting helpers every tab shares.

export const $ = (id) => document.getElementById(id);

/** An API answer that is not 2xx: the server's message and the form field it names (if any). */
export class ApiError extends Error {
  constructor(message, status, field) {
    super(message);
    this.status = status;
    this.field = field || null;
  }
}

/** Show the key box: the studio answered 401, so the cookie `/?key=KEY` sets is missing or stale. */
function askForKey() {
  $("key-box").hidden = false;
  $("key-input").focus();
}

$("key-box").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("key-input").value.trim();
  if (key) location.assign("/?key=" + encodeURIComponent(key) + location.hash);
});

/** fetch() that throws ApiError with the server's {"error": {"message", "field"}} on a non-2xx answer. */
export async function request(path, { method = "GET", body, signal } = {}) {
  const init = { method, signal, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (res.status === 401) askForKey();
  if (!res.ok) {
    const answer = await res.json().catch(() => ({}));
    const error = answer.error || {};
    const message = error.message || (typeof answer.detail === "string" ? answer.detail : "")
      || `${res.status} ${res.statusText}`;
    throw new ApiError(message, res.status, error.field);
  }
  return res;
}

export const getJSON = async (path, options) => (await request(path, options)).json();
export const postJSON = async (path, body, options) =>
  (await request(path, { ...options, method: "POST", body })).json();

/** The events of an SSE body, as {event, data} with data parsed from JSON. */
export async function* readEvents(res) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
    }
  }
}

/** Fill the <datalist>s the path inputs suggest from: data files (#data-paths) and model ids (#model-ids). */
export async function fillPathLists() {
  const [datasets, models] = await Promise.allSettled([getJSON("/api/datasets"), getJSON("/api/models")]);
  if (datasets.status === "fulfilled") {
    $("data-paths").replaceChildren(...datasets.value.datasets.map((d) => el("option", { value: d.path })));
  }
  if (models.status === "fulfilled") {
    $("model-ids").replaceChildren(...models.value.models.map((m) => el("option", { value: m.id }, m.name)));
  }
}

/** One message in a notice box (hidden when empty). */
export function show(box, message) {
  box.textContent = message || "";
  box.hidden = !message;
}

/** An element with attributes and children (strings become text). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name in node && typeof value !== "string") node[name] = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

const missing = (x) => x === null || x === undefined || Number.isNaN(x);

export function number(x, digits = 3) {
  if (missing(x)) return "–";
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString("en");
  return Number(x).toPrecision(digits).replace(/\.?0+$/, "");
}

export function percent(x) {
  return missing(x) ? "–" : (100 * x).toFixed(1) + "%";
}

export function duration(seconds) {
  if (missing(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.round((s % 3600) / 60) + " min";
}

export function bytes(n) {
  if (missing(n)) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

export function ago(unixSeconds) {
  if (missing(unixSeconds)) return "–";
  return duration(Date.now() / 1000 - unixSeconds) + " ago";
}

/** A state badge: running / finished / stopped / failed / interrupted. */
export function badge(state) {
  return el("span", { class: "badge " + (state || "unknown"), "data-testid": "state" }, state || "unknown");
}
