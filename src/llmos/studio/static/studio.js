// LLMOS Studio page: the tabs, routed by the URL's hash so a reload keeps the view
// (#runs, #run/<name>, #new, #models[/<model id>], #playground[/<model id>], #datasets[/<path>]).
// Each tab's module shows its page and returns a function that stops what it started (polls, streams).

import { $, show } from "./api.js";
import { showDatasets } from "./datasets.js";
import { showModels } from "./models.js";
import { newRun } from "./newrun.js";
import { showPlayground } from "./playground.js";
import { listRuns, showRun } from "./runs.js";

const PAGES = {
  runs: { tab: "runs", title: "Runs", open: listRuns },
  run: { tab: "runs", title: "Run", open: showRun },
  new: { tab: "new", title: "New run", open: newRun },
  models: { tab: "models", title: "Models", open: showModels },
  playground: { tab: "playground", title: "Playground", open: showPlayground },
  datasets: { tab: "datasets", title: "Datasets", open: showDatasets },
};

let leave = () => {};

function decoded(text) {
  try {
    return decodeURIComponent(text);
  } catch {  // a hand-typed "%" that starts no escape
    return text;
  }
}

function route() {
  const hash = location.hash.replace(/^#/, "");
  const cut = hash.indexOf("/");
  let name = cut < 0 ? hash : hash.slice(0, cut);
  const argument = cut < 0 ? null : decoded(hash.slice(cut + 1));
  if (!PAGES[name] || (name === "run" && !argument)) name = "runs";
  leave();
  for (const section of document.querySelectorAll("main > section")) section.hidden = section.dataset.page !== name;
  for (const link of document.querySelectorAll("#tabs a")) {
    link.classList.toggle("active", link.dataset.tab === PAGES[name].tab);
  }
  document.body.dataset.page = name;
  document.title = `${argument && name === "run" ? argument : PAGES[name].title} · LLMOS Studio`;
  leave = PAGES[name].open(argument) || (() => {});
}

window.addEventListener("hashchange", route);
if (!window.Plotly) show($("error"), "plotly.min.js did not load, so the charts are off");
route();
