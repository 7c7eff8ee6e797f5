// LLMOS Studio page, Datasets tab: the data files and token-shard folders under the studio's data
// folders, and a preview of one: its first rows, token statistics and a histogram of tokens per row.

import { $, bytes, el, getJSON, number, show } from "./api.js";

let current = null;  // the path previewed

function fileItem(entry) {
  const size = entry.size_bytes !== undefined ? " · " + bytes(entry.size_bytes) : "";
  return el("li", {},
    el("a", { href: "#datasets/" + encodeURIComponent(entry.path), "data-path": entry.path,
              class: entry.path === current ? "active" : null }, entry.path),
    el("small", { class: "muted" }, " " + (entry.kind || "") + size));
}

function cell(value) {
  const text = value !== null && typeof value === "object" ? JSON.stringify(value) : String(value ?? "");
  return el("td", { title: text.length > 200 ? text.slice(0, 2000) : null },
    text.length > 200 ? text.slice(0, 200) + "…" : text);
}

function rowsTable(preview) {
  const columns = preview.columns && preview.columns.length ? preview.columns : null;
  const head = el("tr", {}, el("th", {}, "#"), ...(columns || ["row"]).map((c) => el("th", {}, String(c))));
  const rows = preview.rows.map((row, i) => el("tr", {}, el("td", { class: "num muted" }, String(i + 1)),
    ...(columns && row !== null && typeof row === "object" && !Array.isArray(row)
      ? columns.map((c) => cell(row[c]))
      : Array.isArray(row) ? row.map(cell) : [cell(row)])));
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
    $("dataset-path").textContent = `${data.path} (${data.kind})`;
    const t = data.tokens || {};
    const stats = [["Rows", number(data.num_rows)], ["Tokens", number(t.total)], ["Mean", number(t.mean)],
                   ["Min", number(t.min)], ["Max", number(t.max)]];
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
