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
  runs: { tab: "runs", open: listRuns },
  run: { tab: "runs", open: showRun },
  new: { tab: "new", open: newRun },
  models: { tab: "models", open: showModels },
  playground: { tab: "playground", open: showPlayground },
  datasets: { tab: "datasets", open: showDatasets },
};

let leave = () => {};

function route() {
  const hash = location.hash.replace(/^#/, "");
  const cut = hash.indexOf("/");
  let name = cut < 0 ? hash : hash.slice(0, cut);
  const argument = cut < 0 ? null : decodeURIComponent(hash.slice(cut + 1));
  if (!PAGES[name] || (name === "run" && !argument)) name = "runs";
  leave();
  for (const section of document.querySelectorAll("main > section")) section.hidden = section.dataset.page !== name;
  for (const link of document.querySelectorAll("#tabs a")) {
    link.classList.toggle("active", link.dataset.tab === PAGES[name].tab);
  }
  document.body.dataset.page = name;
  leave = PAGES[name].open(argument) || (() => {});
}

window.addEventListener("hashchange", route);
if (!window.Plotly) show($("error"), "plotly.min.js did not load, so the charts are off");
route();
