// Quality: one card per assessment name, shaped by its type as discovery reports it.

import { insights } from "../api.js";
import { COLORS, timeChart } from "../charts.js";
import { correlationBlock } from "../correlations.js";
import { bars, card, empty, figure, format, h, replace } from "../dom.js";

export default class Quality {
  constructor(root) {
    this.grid = h("div", { class: "grid" });
    root.append(h("div", { class: "toolbar" }, h("h1", {}, "Quality")), this.grid);
    this.cards = new Map();
  }

  async update(ctx) {
    const discovery = await insights("assessments/discovery", ctx.window);
    ctx.meta(discovery.meta);
    if (!discovery.data.length) {
      this.cards.clear();
      replace(
        this.grid,
        empty("No assessments in this range. Add feedback to a trace in the Traces view, or through the API."),
      );
      return;
    }
    const names = new Set(discovery.data.map((a) => a.assessment_name));
    for (const [name, c] of this.cards) if (!names.has(name)) (c.el.remove(), this.cards.delete(name));
    if (!this.cards.size) this.grid.replaceChildren();
    await Promise.all(discovery.data.map((info) => this.one(ctx, info)));
  }

  async one(ctx, info) {
    const name = info.assessment_name;
    let c = this.cards.get(name);
    if (!c || c.type !== info.assessment_type) {
      c?.el.remove();
      c = card(name, { name: `assessment:${name}` });
      c.type = info.assessment_type;
      c.heading.append(h("span", { class: "kind" }, info.assessment_type));
      c.figures = h("div", { class: "figures" });
      c.chart = h("div", { class: "chart", dataset: { chart: `assessment:${name}` } });
      c.values = h("div");
      c.correlations = h("div");
      c.body.append(c.figures, c.values, c.chart, c.correlations);
      this.cards.set(name, c);
      this.grid.append(c.el);
    }
    const m = await insights("assessments/metrics", { ...ctx.window, assessment_name: name });
    const s = m.summary;
    const times = m.time_series.map((p) => p.time_bucket);
    const sources = `sources: ${info.sources.join(", ") || "–"}`;
    if (info.assessment_type === "pass-fail" || info.assessment_type === "boolean") {
      replace(
        c.figures,
        figure(`${name}.total_count`, "assessed", s.total_count),
        figure(`${name}.failure_count`, "failures", s.failure_count),
        figure(`${name}.failure_rate`, "failure rate", s.failure_rate, format.percent),
      );
      replace(c.values, h("p", { class: "empty" }, sources));
      timeChart(c.chart, {
        times,
        zone: ctx.zone,
        unit: "%",
        series: [
          {
            label: "failure rate",
            color: COLORS.error,
            values: m.time_series.map((p) => (p.total_count ? p.failure_rate : null)),
          },
        ],
      });
      const failing = info.assessment_type === "pass-fail" ? "no" : "false";
      if (s.failure_count) {
        await correlationBlock(c.correlations, ctx, {
          dimension: { name: `assessment.${name}`, parameters: { value: failing } },
          label: `${name} = ${failing}`,
        });
      } else replace(c.correlations, empty("No failures in this range"));
    } else if (info.assessment_type === "numeric") {
      replace(
        c.figures,
        ["p50", "p90", "p99", "avg", "min", "max"].map((q) =>
          figure(`${name}.${q}_value`, q === "avg" ? "average" : q, s[`${q}_value`], format.number),
        ),
        figure(`${name}.total_count`, "assessed", s.total_count),
      );
      replace(c.values, h("p", { class: "empty" }, sources));
      timeChart(c.chart, {
        times,
        zone: ctx.zone,
        series: ["p50", "p90", "p99"].map((q) => ({
          label: q,
          color: COLORS[q],
          values: m.time_series.map((p) => p[`${q}_value`]),
        })),
      });
      if (s.p50_value !== null) {
        await correlationBlock(c.correlations, ctx, {
          dimension: { name: `assessment.${name}`, parameters: { operator: "<", threshold: String(s.p50_value) } },
          label: `${name} < ${format.number(s.p50_value)} (p50)`,
        });
      }
    } else {
      replace(
        c.figures,
        figure(`${name}.total_count`, "assessed", s.total_count),
        figure(`${name}.unique_values`, "distinct values", s.unique_values),
      );
      replace(
        c.values,
        bars(
          s.top_values.map((v) => ({
            label: v.value,
            value: v.count,
            shown: `${format.count(v.count)} · ${format.percent(v.percentage)}`,
          })),
          { color: COLORS.accent },
        ),
      );
      c.chart.hidden = true;
      const top = s.top_values[0];
      if (top) {
        await correlationBlock(c.correlations, ctx, {
          dimension: { name: `assessment.${name}`, parameters: { value: top.value } },
          label: `${name} = ${top.value}`,
        });
      }
    }
  }
}
