// Where the dashboard is: the view and every choice that shapes it live in the URL's hash
// (#/tools?exp=0&range=24h&tz=UTC), so a link or a reload shows the same thing.

export const VIEWS = ["traffic", "quality", "tools", "tags", "explore", "traces", "alerts"];

export const RANGES = {
  "1h": 3_600_000,
  "6h": 6 * 3_600_000,
  "24h": 24 * 3_600_000,
  "7d": 7 * 86_400_000,
  "30d": 30 * 86_400_000,
};
export const DEFAULT_RANGE = "24h";

export function read() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query] = raw.split("?", 2);
  const view = VIEWS.includes(path) ? path : "traffic";
  return { view, params: new URLSearchParams(query || "") };
}

export function href(view, params) {
  const query = params.toString();
  return `#/${view}${query ? `?${query}` : ""}`;
}

// A new history entry for a navigation, a replaced one for a refinement of the same view.
export function go(view, params, { replace = false } = {}) {
  const target = href(view, params);
  if (target === location.hash) return false;
  if (replace) history.replaceState(null, "", target);
  else history.pushState(null, "", target);
  window.dispatchEvent(new Event("ti:navigate"));
  return true;
}

// The frame's part of the URL, kept when moving between views.
export const FRAME_KEYS = ["exp", "range", "from", "to", "bucket", "tz"];

export function frameOnly(params) {
  const out = new URLSearchParams();
  for (const key of FRAME_KEYS) for (const value of params.getAll(key)) out.append(key, value);
  return out;
}

export function defaultZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

// The window every query of one render shares: the same instant "now" for all of them.
export function windowOf(params, now = Date.now()) {
  const range = params.get("range") || DEFAULT_RANGE;
  let start;
  let end;
  if (range === "custom" && params.get("from") && params.get("to")) {
    start = Number(params.get("from"));
    end = Number(params.get("to"));
  } else {
    end = now;
    start = now - (RANGES[range] ?? RANGES[DEFAULT_RANGE]);
  }
  let bucket = params.get("bucket") || "auto";
  if (bucket === "auto") {
    const span = end - start;
    bucket = span <= 6 * 3_600_000 ? "minute" : span <= 7 * 86_400_000 ? "hour" : "day";
  }
  return {
    experiment_ids: params.getAll("exp"),
    start_time: start,
    end_time: end,
    time_bucket: bucket,
    timezone: params.get("tz") || defaultZone(),
  };
}

// Wall time in an IANA zone → epoch ms (for the custom range's inputs), and back.
export function zonedToEpoch(local, zone) {
  const [date, time = "00:00"] = local.split("T");
  const [y, m, d] = date.split("-").map(Number);
  const [hh, mm] = time.split(":").map(Number);
  const guess = Date.UTC(y, m - 1, d, hh, mm);
  let epoch = guess - offsetOf(guess, zone);
  epoch = guess - offsetOf(epoch, zone);
  return epoch;
}

export function epochToZoned(epoch, zone) {
  const shifted = new Date(epoch + offsetOf(epoch, zone));
  return shifted.toISOString().slice(0, 16);
}

function offsetOf(epoch, zone) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone,
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  }).formatToParts(new Date(epoch));
  const get = (type) => Number(parts.find((p) => p.type === type).value);
  const wall = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"), get("second"));
  return wall - Math.floor(epoch / 1000) * 1000;
}
