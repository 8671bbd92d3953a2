// Tools: the summary of every tool called, then one row per tool with its volume, latency
// percentiles and error rate over time.

import { insights } from "../api.js";
import { COLORS, timeChart } from "../charts.js";
import { correlationBlock } from "../correlations.js";
import { bars, card, empty, figure, format, h, replace } from "../dom.js";

const ROWS = 20; // the most called tools get a row each

export default class Tools {
  constructor(root) {
    this.summary = card("All tools", { wide: true, name: "tools" });
    this.rows = h("div", { class: "grid" });
    root.append(
      h("div", { class: "toolbar" }, h("h1", {}, "Tools")),
      h("div", { class: "grid" }, this.summary.el),
      h("br"),
      this.rows,
    );
    this.shown = new Map(); // tool → "traces" | "invocations"
    this.built = new Map();
  }

  async update(ctx) {
    const discovery = await insights("tools/discovery", ctx.window);
    ctx.meta(discovery.meta);
    const tools = discovery.data;
    const s = discovery.summary;
    if (!tools.length) {
      replace(this.summary.body, empty("No tool calls in this range"));
      this.rows.replaceChildren();
      this.built.clear();
      return;
    }
    replace(
      this.summary.body,
      h(
        "div",
        { class: "figures" },
        figure("tools.tool_count", "tools", s.tool_count),
        figure("tools.invocation_count", "invocations", s.invocation_count),
        figure("tools.trace_count", "traces with tools", s.trace_count),
      ),
      pastTheCap(discovery.meta),
      h(
        "div",
        { class: "grid" },
        h(
          "div",
          {},
          h("h3", {}, "Invocations"),
          bars(tools.map((t) => ({ label: t.tool_name, value: t.invocation_count }))),
        ),
        h(
          "div",
          {},
          h("h3", {}, "Latency p50"),
          bars(
            tools.map((t) => ({ label: t.tool_name, value: t.p50_latency, shown: format.ms(t.p50_latency) })),
            { color: COLORS.p90 },
          ),
        ),
        h(
          "div",
          {},
          h("h3", {}, "Error rate"),
          bars(
            tools.map((t) => ({ label: t.tool_name, value: t.error_rate, shown: format.percent(t.error_rate) })),
            {
              color: COLORS.error,
              max: 100,
            },
          ),
        ),
      ),
    );
    const top = tools.slice(0, ROWS);
    const names = new Set(top.map((t) => t.tool_name));
    for (const [name, row] of this.built) if (!names.has(name)) (row.el.remove(), this.built.delete(name));
    await Promise.all(top.map((tool) => this.row(ctx, tool)));
  }

  async row(ctx, tool) {
    const name = tool.tool_name;
    let r = this.built.get(name);
    if (!r) {
      r = card(name, { wide: true, name: `tool:${name}` });
      r.toggle = h("span", { class: "presets", role: "group", "aria-label": `${name}: volume as` });
      r.figures = h("div", { class: "figures" });
      r.volume = h("div", { class: "chart small", dataset: { chart: `tool:${name}:volume` } });
      r.latency = h("div", { class: "chart small", dataset: { chart: `tool:${name}:latency` } });
      r.errors = h("div", { class: "chart small", dataset: { chart: `tool:${name}:errors` } });
      r.correlations = h("div");
      const quoted = `'${name.replaceAll("'", "''")}'`;
      r.heading.append(r.toggle, ctx.tracesLink(`span.tool_name = ${quoted}`, "view traces"));
      r.body.append(
        h(
          "div",
          { class: "row" },
          r.figures,
          h("div", {}, h("h3", {}, "Volume"), r.volume),
          h("div", {}, h("h3", {}, "Latency"), r.latency),
          h("div", {}, h("h3", {}, "Error rate"), r.errors),
        ),
        r.correlations,
      );
      this.built.set(name, r);
    }
    this.rows.append(r.el); // keeps the discovery order
    const m = await insights("tools/metrics", { ...ctx.window, tool_name: name });
    const times = m.time_series.map((p) => p.time_bucket);
    const as = this.shown.get(name) ?? "traces";
    replace(
      r.toggle,
      ["traces", "invocations"].map((what) =>
        h(
          "button",
          {
            type: "button",
            "aria-pressed": String(what === as),
            onclick: () => {
              this.shown.set(name, what);
              this.row(ctx, tool);
            },
          },
          what,
        ),
      ),
    );
    replace(
      r.figures,
      figure(`tool:${name}.invocation_count`, "invocations", tool.invocation_count),
      figure(`tool:${name}.trace_count`, "traces", tool.trace_count),
      figure(`tool:${name}.p50_latency`, "p50", tool.p50_latency, format.ms),
      figure(`tool:${name}.error_rate`, "error rate", tool.error_rate, format.percent),
    );
    timeChart(r.volume, {
      times,
      zone: ctx.zone,
      series: [
        {
          label: as,
          color: COLORS.ok,
          bars: true,
          values: m.time_series.map((p) => (as === "traces" ? p.trace_count : p.count)),
        },
      ],
    });
    timeChart(r.latency, {
      times,
      zone: ctx.zone,
      unit: " ms",
      series: ["p50", "p90", "p99"].map((q) => ({
        label: q,
        color: COLORS[q],
        values: m.time_series.map((p) => p[`${q}_latency`]),
      })),
    });
    if (tool.error_count) {
      if (!r.errors._chart) r.errors.replaceChildren(); // the "No errors" of an earlier update
      timeChart(r.errors, {
        times,
        zone: ctx.zone,
        unit: "%",
        series: [
          {
            label: "error rate",
            color: COLORS.error,
            values: m.time_series.map((p) => (p.count ? (100 * p.error_count) / p.count : null)),
          },
        ],
      });
      await correlationBlock(r.correlations, ctx, {
        dimension: { name: `tools.${name}`, parameters: { value: "error" } },
        label: `${name} failed`,
      });
    } else {
      r.errors._chart?.destroy();
      r.errors._chart = null;
      replace(r.errors, empty("No errors"));
      replace(r.correlations);
    }
  }
}

/** Tool names past the experiment's cap are counted together, not listed: say how many traces. */
function pastTheCap(meta) {
  const other = (meta.cardinality_overflow ?? []).find((o) => o.tag_key === null);
  if (!other) return null;
  return h(
    "p",
    { class: "empty", dataset: { overflow: "tools" } },
    `${format.count(other.other_count)} traces called tool names past the cap (TRACE_INSIGHTS_TOOL_NAME_CAP): ` +
      "their calls are in the invocations above, not listed by name; ask the Traces view for one by name.",
  );
}
