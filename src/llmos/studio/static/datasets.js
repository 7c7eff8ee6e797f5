// LLMOS Studio page, Datasets tab: the data files and token-shard folders under the studio's data
// folders, and a preview of one: its first rows, token statistics and a histogram of tokens per row.

import { $, bytes, el, getJSON, number, show } from "./api.js";

let current = null;  // the path previewed
const listed = new Map();  // path -> its entry in the list

/** A path as the page shows it: relative to its data folder. */
const shown = (entry) => (entry.path.startsWith(entry.root + "/") ? entry.path.slice(entry.root.length + 1) : entry.path);

function fileItem(entry) {
  return el("li", {},
    el("a", { href: "#datasets/" + encodeURIComponent(entry.path), "data-path": entry.path, title: entry.path,
              class: entry.path === current ? "active" : null }, shown(entry)),
    el("small", { class: "muted" }, ` ${entry.kind} · ${bytes(entry.size_bytes)}`));
}

function cell(value) {
  const text = value !== null && typeof value === "object" ? JSON.stringify(value) : String(value ?? "");
  return el("td", { title: text.length > 200 ? text.slice(0, 2000) : null },
    text.length > 200 ? text.slice(0, 200) + "…" : text);
}

function rowsTable(preview) {
  const columns = preview.columns && preview.columns.length ? preview.columns : ["text"];
  const counts = preview.row_tokens || [];
  const head = el("tr", {}, el("th", {}, "#"), ...columns.map((c) => el("th", {}, String(c))), el("th", {}, "tokens"));
  const rows = preview.rows.map((row, i) => el("tr", {}, el("td", { class: "num muted" }, String(i + 1)),
    ...(row !== null && typeof row === "object" && !Array.isArray(row) ? columns.map((c) => cell(row[c])) : [cell(row)]),
    el("td", { class: "num" }, number(counts[i]))));
  $("dataset-rows").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
}

function histogram(preview) {
  const { edges, counts } = preview.histogram || { edges: [], counts: [] };
  const centers = counts.map((_, i) => (edges[i] + edges[i + 1]) / 2);
  const widths = counts.map((_, i) => edges[i + 1] - edges[i]);
  Plotly.react($("token-histogram"), [{ type: "bar", x: centers, y: counts, width: widths,
                                         marker: { color: "#2f6fed" }, name: "rows" }], {
    margin: { l: 50, r: 20, t: 30, b: 40 }, height: 240, bargap: 0.05,
    title: { text: "tokens per row", font: { size: 13 } },
    xaxis: { title: { text: "tokens" } }, yaxis: { title: { text: "rows" } },
  }, { responsive: true, displaylogo: false });
}

async function preview(path) {
  current = path;
  show($("dataset-error"), "");
  $("dataset-hint").hidden = true;
  const tokenizer = $("dataset-tokenizer").value;
  const query = new URLSearchParams({ path });
  if (tokenizer) query.set("tokenizer", tokenizer);
  try {
    const data = await getJSON("/api/datasets/preview?" + query);
    if (current !== path) return;
    $("dataset-path").textContent = `${listed.has(data.path) ? shown(listed.get(data.path)) : data.path} (${data.kind})`;
    const t = data.tokens || {};
    const rows = data.complete === false && data.estimated_rows ? `~${number(data.estimated_rows)}` : number(data.num_rows);
    const stats = [["Rows", rows], ["Tokens", number(t.total)], ["Mean", number(t.mean)],
                   ["Min", number(t.min)], ["Max", number(t.max)], ["Tokenizer", t.tokenizer || "–"]];
    const notes = [data.note, ...(data.errors || [])].filter(Boolean);
    show($("dataset-note"), notes.join("; "));
    $("dataset-stats").replaceChildren(...stats.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { "data-stat": k }, v)]));
    $("dataset-body").hidden = false;
    rowsTable(data);
    histogram(data);
  } catch (err) {
    $("dataset-body").hidden = true;
    show($("dataset-error"), err.message);
  }
  for (const a of $("dataset-list").querySelectorAll("a")) a.classList.toggle("active", a.dataset.path === path);
}

export function showDatasets(path) {
  getJSON("/api/datasets").then(({ datasets }) => {
    for (const entry of datasets) listed.set(entry.path, entry);
    $("dataset-list").replaceChildren(...datasets.map(fileItem));
    if (!datasets.length) $("dataset-list").append(el("li", { class: "muted" }, "No data files in the data folders."));
  }).catch((err) => show($("dataset-error"), "Could not list datasets: " + err.message));
  if ($("dataset-tokenizer").childElementCount === 1) {
    getJSON("/api/models").then(({ models }) => $("dataset-tokenizer").append(
      ...models.map((m) => el("option", { value: m.id }, m.name)))).catch(() => {});
  }
  if (path) preview(path);
  return () => {};
}

$("dataset-tokenizer").addEventListener("change", () => current && preview(current));
