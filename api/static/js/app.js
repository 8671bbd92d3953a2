// The frame around every view: experiment, range, bucket and zone (all in the URL), the
// freshness badge, the live feed, the token prompt, and the one update at a time of the open
// view (a live change during an update runs once after it, never beside it).

import { ApiError, call, onUnauthorized, setToken, token } from "./api.js";
import { format, h, replace } from "./dom.js";
import { Feed } from "./live.js";
import { RANGES, defaultZone, epochToZoned, frameOnly, go, href, read, windowOf, zonedToEpoch } from "./state.js";
import Alerts from "./views/alerts.js";
import Explore from "./views/explore.js";
import Quality from "./views/quality.js";
import Tags from "./views/tags.js";
import Tools from "./views/tools.js";
import Traces from "./views/traces.js";
import Traffic from "./views/traffic.js";

const VIEWS = {
  traffic: Traffic,
  quality: Quality,
  tools: Tools,
  tags: Tags,
  explore: Explore,
  traces: Traces,
  alerts: Alerts,
};
const LIVE_VIEWS = new Set(["traffic", "quality", "tools", "tags", "explore"]);

const main = document.getElementById("main");
const picker = document.getElementById("experiment");
const bucket = document.getElementById("bucket");
const zone = document.getElementById("timezone");
const custom = document.getElementById("custom-range");
const badge = document.getElementById("freshness");
const liveButton = document.getElementById("live");
const dialog = document.getElementById("token-dialog");

let current = null; // {name, view, key}
let running = null;
let again = false;
let paused = false;
let experimentsLoading = null; // the experiment list, asked once (again after a sign-in)
let firstExperiment = null;
let locked = false; // a 401 was answered: nothing shows until the token is given

const feed = new Feed({
  onChange: () => {
    if (current && LIVE_VIEWS.has(current.name) && !paused) schedule();
  },
  onState: (state) => {
    liveButton.classList.toggle("offline", state === "offline");
    liveButton.title = state === "offline" ? "The live feed is not connected; retrying" : "Following the live feed";
  },
});

function params() {
  return read().params;
}

function ctxFor(name) {
  const p = params();
  const window = windowOf(p);
  return {
    name,
    params: p,
    window,
    zone: window.timezone,
    set(key, value) {
      const next = params();
      if (value === null || value === undefined || value === "") next.delete(key);
      else next.set(key, value);
      go(name, next, { replace: true });
    },
    go(view, extra = {}) {
      const next = frameOnly(params());
      for (const [k, v] of Object.entries(extra)) if (v !== undefined && v !== null) next.set(k, v);
      go(view, next);
    },
    tracesLink(filter, text) {
      const next = frameOnly(params());
      if (filter) next.set("filter", filter);
      return h("a", { href: href("traces", next), class: "traces-link" }, text);
    },
    explore(slice) {
      const next = frameOnly(params());
      next.set("slice", JSON.stringify(slice));
      go("explore", next);
    },
    meta: showMeta,
  };
}

function showMeta(meta) {
  if (!meta) return;
  const parts = [meta.source === "store" ? "exact, from the store" : "live aggregates"];
  if (meta.watermark) parts.push(`latest trace ${ago(meta.watermark)}`);
  if (meta.consumer_lag !== null && meta.consumer_lag !== undefined)
    parts.push(`lag ${format.count(meta.consumer_lag)}`);
  const warnings = [];
  const overflow = meta.cardinality_overflow ?? [];
  const tagKeys = overflow.filter((o) => o.tag_key !== null).length;
  if (tagKeys) warnings.push(`${tagKeys} tag key(s) past the value cap`);
  if (overflow.some((o) => o.tag_key === null)) warnings.push("tool names past the cap");
  if (meta.incomplete?.length) warnings.push("being rebuilt");
  badge.textContent = [...parts, ...warnings].join(" · ");
  badge.classList.toggle("warn", warnings.length > 0 || (meta.consumer_lag ?? 0) > 1000);
  badge.title = `Answered for ${new Date(meta.start_time).toISOString()} – ${new Date(meta.end_time).toISOString()} (${meta.edges} edges)`;
}

function ago(ms) {
  const seconds = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (seconds < 90) return `${seconds} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

function schedule() {
  if (running) {
    again = true;
    return;
  }
  running = (async () => {
    do {
      again = false;
      await update();
    } while (again);
    running = null;
  })();
}

async function update() {
  const shown = current;
  if (!shown) return;
  const started = performance.now();
  const ctx = ctxFor(shown.name);
  try {
    await shown.view.update(ctx);
  } catch (error) {
    if (current !== shown || error.name === "AbortError") return;
    if (!(error instanceof ApiError && error.status === 401)) {
      main.prepend(h("p", { class: "error", role: "alert" }, error.message || String(error)));
    }
    return;
  }
  if (current !== shown) return; // the view was left (or locked) meanwhile
  main.dataset.request = JSON.stringify(ctx.window);
  main.dataset.updates = String(Number(main.dataset.updates || 0) + 1);
  performance.mark(`ti:${shown.name}:drawn`, { detail: { ms: performance.now() - started } });
}

async function loadExperiments() {
  let answer;
  try {
    answer = await call("GET", "/api/2.0/mlflow/experiments/search?max_results=1000");
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401))
      replace(main, h("p", { class: "error", role: "alert" }, error.message));
    return false;
  }
  const experiments = answer.experiments;
  replace(
    picker,
    experiments.map((e) =>
      h("option", { value: e.experiment_id }, e.name === e.experiment_id ? e.name : `${e.name} (${e.experiment_id})`),
    ),
  );
  if (!experiments.length) {
    if (!params().getAll("exp").length)
      replace(
        main,
        h("p", { class: "empty" }, "No experiments yet: send traces to the collector (OTLP on :4318 or :4317)."),
      );
    return false;
  }
  firstExperiment = experiments[0].experiment_id;
  syncFrame();
  return true;
}

function syncFrame() {
  const p = params();
  const range = p.get("range") || "24h";
  picker.value = p.getAll("exp")[0] ?? "";
  bucket.value = p.get("bucket") || "auto";
  const tz = p.get("tz") || defaultZone();
  if (![...zone.options].some((o) => o.value === tz)) zone.append(h("option", { value: tz }, tz)); // browsers list some zones by older names
  zone.value = tz;
  for (const button of document.querySelectorAll("[data-range]")) {
    button.setAttribute("aria-pressed", String(button.dataset.range === range));
  }
  custom.hidden = range !== "custom";
  if (range === "custom") {
    const w = windowOf(p);
    document.getElementById("from").value = epochToZoned(w.start_time, w.timezone);
    document.getElementById("to").value = epochToZoned(w.end_time, w.timezone);
  }
  for (const link of document.querySelectorAll("[data-view]")) {
    const next = frameOnly(p);
    link.href = href(link.dataset.view, next);
    if (link.dataset.view === read().view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function navigate() {
  if (locked) return;
  experimentsLoading ??= loadExperiments().then((ok) => {
    if (!ok) experimentsLoading = null;
    return ok;
  });
  // with an experiment in the link, its figures are asked for while the list loads
  if (!params().getAll("exp").length && !(await experimentsLoading)) return;
  if (locked) return;
  if (!params().getAll("exp").length) {
    const p = params();
    p.set("exp", firstExperiment);
    history.replaceState(null, "", href(read().view, p));
  }
  syncFrame();
  const { view: name, params: p } = read();
  const key = JSON.stringify([name, [...p.entries()]]);
  if (current?.key === key) return;
  const frameKey = JSON.stringify([name, [...frameOnly(p).entries()]]);
  if (current?.name === name && current.frameKey === frameKey && current.view.keep?.(p)) {
    current.key = key; // a refinement the view handles itself (a selection, a toggle)
    schedule();
    return;
  }
  const View = VIEWS[name];
  main.replaceChildren();
  main.dataset.view = name;
  main.dataset.updates = "0";
  current = { name, key, frameKey, view: new View(main, ctxFor(name)) };
  document.title = `${document.querySelector(`[data-view="${name}"]`).textContent} · Trace Insights`;
  if (!paused) feed.follow(p.getAll("exp"));
  schedule();
}

function setFrame(key, value) {
  const p = params();
  if (value === null) p.delete(key);
  else p.set(key, value);
  go(read().view, p);
}

picker.addEventListener("change", () => setFrame("exp", picker.value));
bucket.addEventListener("change", () => setFrame("bucket", bucket.value === "auto" ? null : bucket.value));
zone.addEventListener("change", () => setFrame("tz", zone.value));
for (const button of document.querySelectorAll("[data-range]")) {
  button.addEventListener("click", () => {
    const range = button.dataset.range;
    if (range === "custom") {
      custom.hidden = false;
      const w = windowOf(params());
      document.getElementById("from").value = epochToZoned(w.start_time, w.timezone);
      document.getElementById("to").value = epochToZoned(w.end_time, w.timezone);
      document.getElementById("from").focus();
      return;
    }
    const p = params();
    p.set("range", range);
    p.delete("from");
    p.delete("to");
    go(read().view, p);
  });
}
custom.addEventListener("submit", (event) => {
  event.preventDefault();
  const p = params();
  const tz = p.get("tz") || defaultZone();
  const from = zonedToEpoch(document.getElementById("from").value, tz);
  const to = zonedToEpoch(document.getElementById("to").value, tz);
  if (!(to > from)) {
    document.getElementById("to").setCustomValidity("The end must be after the start");
    document.getElementById("to").reportValidity();
    return;
  }
  document.getElementById("to").setCustomValidity("");
  p.set("range", "custom");
  p.set("from", String(from));
  p.set("to", String(to));
  go(read().view, p);
});
liveButton.addEventListener("click", () => {
  paused = !paused;
  liveButton.setAttribute("aria-pressed", String(!paused));
  liveButton.textContent = paused ? "Paused" : "Live";
  if (paused) feed.stop();
  else {
    feed.follow(params().getAll("exp"));
    schedule();
  }
});

onUnauthorized(() => {
  locked = true;
  current = null;
  feed.stop();
  replace(main, h("p", { class: "empty" }, "Sign in to see this Trace Insights."));
  if (dialog.open) return;
  document.getElementById("token-error").textContent = token() ? "That token was not accepted." : "";
  dialog.showModal();
});
document.getElementById("token-form").addEventListener("submit", () => {
  setToken(document.getElementById("token").value.trim());
  document.getElementById("token").value = "";
  locked = false;
  experimentsLoading = null;
  navigate();
});

const zones = ["UTC", ...(Intl.supportedValuesOf ? Intl.supportedValuesOf("timeZone") : [])];
const here = defaultZone();
if (!zones.includes(here)) zones.push(here);
replace(
  zone,
  [...new Set(zones)].map((z) => h("option", { value: z }, z)),
);
for (const [range] of Object.entries(RANGES))
  document.querySelector(`[data-range="${range}"]`).title = `The last ${range}`;

window.addEventListener("hashchange", navigate);
window.addEventListener("ti:navigate", navigate);
navigate();
