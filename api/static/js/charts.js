// Time series charts on uPlot (vendored; docs/ui.md says why): bars for counts, lines for
// rates and percentiles, all on the frame's time zone. A chart is made once per element and
// then only given new data, so a live update redraws in place.

export const COLORS = {
  ok: "#0072b2",
  error: "#d55e00",
  p50: "#0072b2",
  p90: "#e69f00",
  p99: "#cc79a7",
  accent: "#009e73",
  sky: "#56b4e9",
};
const DASHES = [undefined, [6, 3], [2, 3]];

// Resolved when the chart has drawn its latest data (the dashboard's performance marks).
export function drawn(el) {
  return el._drawn ?? Promise.resolve();
}

// series: [{label, color, values, bars?, shown?(value, index)}]; times: bucket starts (ms).
export function timeChart(el, { times, series, zone, unit = "" }) {
  const data = [times, ...series.map((s) => s.values)];
  const key = JSON.stringify([zone, unit, series.map((s) => [s.label, s.color, !!s.bars])]);
  let done;
  el._drawn = new Promise((resolve) => (done = resolve));
  if (el._chart && el._key === key) {
    el._done = done;
    el._chart.setData(data);
    return el._chart;
  }
  el._chart?.destroy();
  el._key = key;
  el._done = done;
  const width = Math.max(240, Math.floor(el.clientWidth || el.parentElement?.clientWidth || 400));
  const bars = uPlot.paths.bars({ size: [0.8, 48], gap: 1 });
  const options = {
    width,
    height: el.classList.contains("small") ? 120 : 180,
    ms: 1,
    tzDate: (ts) => uPlot.tzDate(new Date(ts), zone),
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    axes: [
      { stroke: "#57606a", grid: { stroke: "#eaeef2" } },
      {
        stroke: "#57606a",
        grid: { stroke: "#eaeef2" },
        size: 64,
        values: (u, ticks) => ticks.map((t) => tick(t, unit)),
      },
    ],
    series: [
      { label: "time" },
      ...series.map((s, i) => ({
        label: s.label,
        stroke: s.color,
        fill: s.bars ? s.color : undefined,
        width: s.bars ? 0 : 2,
        dash: s.bars ? undefined : DASHES[i % DASHES.length],
        paths: s.bars ? bars : undefined,
        // a point per value while they are few (a line of one bucket would not show)
        points: { show: s.bars ? false : (u, si) => u.data[si].filter((v) => v !== null).length <= 60, size: 5 },
        value: (u, v, si, index) => {
          const shown = s.shown ? s.shown(v, index) : v;
          return shown === null || shown === undefined ? "–" : tick(shown, unit);
        },
      })),
    ],
    hooks: { draw: [() => el._done?.()] },
  };
  el._chart = new uPlot(options, data, el);
  if (!el._resize) {
    // the chart follows its card: a scrollbar appearing, a window resized
    el._resize = new ResizeObserver(() => {
      const w = Math.max(240, Math.floor(el.clientWidth));
      if (el._chart && el._chart.width !== w) el._chart.setSize({ width: w, height: el._chart.height });
    });
    el._resize.observe(el);
  }
  return el._chart;
}

function tick(n, unit) {
  if (unit === " ms" && Math.abs(n) >= 1000) return `${short(n / 1000)} s`;
  return `${short(n)}${unit}`;
}

function short(n) {
  if (n === null || n === undefined) return "";
  const abs = Math.abs(n);
  if (abs >= 1e9) return `${+(n / 1e9).toFixed(1)}G`;
  if (abs >= 1e6) return `${+(n / 1e6).toFixed(1)}M`;
  if (abs >= 1e4) return `${+(n / 1e3).toFixed(1)}k`;
  return `${+n.toFixed(abs < 10 ? 2 : 0)}`;
}
