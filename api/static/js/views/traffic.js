// Traffic & Cost: volume (OK and errors stacked), latency percentiles, error rate, cost (per
// bucket, per provider, and the models no price was found for) and tokens and cost by model,
// each card with its slice's correlations.

import { insights } from "../api.js";
import { COLORS, drawn, timeChart } from "../charts.js";
import { correlationBlock } from "../correlations.js";
import { card, empty, figure, format, h, replace } from "../dom.js";

export default class Traffic {
  constructor(root) {
    this.volume = card("Volume", { wide: true, name: "volume" });
    this.latency = card("Latency", { name: "latency" });
    this.errors = card("Errors", { name: "errors" });
    this.cost = card("Cost", { name: "cost" });
    this.tokens = card("Tokens and cost by model", { wide: true, name: "tokens" });
    this.volumeTotal = h("span", { class: "total" });
    this.volumeLink = h("span");
    this.volume.heading.append(this.volumeLink, this.volumeTotal);
    this.charts = {};
    const charted = { volume: this.volume, latency: this.latency, errors: this.errors, cost: this.cost };
    for (const [name, c] of Object.entries(charted)) {
      c.figures = h("div", { class: "figures" });
      this.charts[name] = h("div", { class: "chart", dataset: { chart: name } });
      c.correlations = h("div");
      c.body.append(c.figures, this.charts[name], c.correlations);
    }
    this.tokens.content = h("div");
    this.tokens.correlations = h("div");
    this.tokens.body.append(this.tokens.content, this.tokens.correlations);
    this.volume.correlations.remove();
    this.cost.correlations.remove();
    this.cost.notes = h("div");
    this.cost.body.append(this.cost.notes);
    root.append(
      h("div", { class: "toolbar" }, h("h1", {}, "Traffic & Cost")),
      h("div", { class: "grid" }, this.volume.el, this.latency.el, this.errors.el, this.cost.el, this.tokens.el),
    );
    this.model = null;
  }

  async update(ctx) {
    const w = ctx.window;
    const [volume, latency, errors, cost, tokens] = await Promise.all(
      ["volume", "latency", "errors", "cost", "tokens"].map((name) => insights(`traffic-cost/${name}`, w)),
    );
    ctx.meta(volume.meta);
    const times = volume.time_series.map((p) => p.time_bucket);

    replace(this.volumeLink, ctx.tracesLink("", "view traces"));
    this.volumeTotal.textContent = `${format.count(volume.summary.count)} traces`;
    this.volumeTotal.dataset.figure = "volume.count";
    this.volumeTotal.dataset.value = volume.summary.count;
    replace(
      this.volume.figures,
      figure("volume.ok_count", "OK", volume.summary.ok_count),
      figure("volume.error_count", "Errors", volume.summary.error_count),
    );
    const ok = volume.time_series.map((p) => p.ok_count);
    timeChart(this.charts.volume, {
      times,
      zone: ctx.zone,
      series: [
        // the total, drawn first, with the errors over its lower part: a stacked bar
        {
          label: "OK",
          color: COLORS.ok,
          bars: true,
          values: volume.time_series.map((p) => p.count),
          shown: (v, i) => ok[i],
        },
        { label: "Errors", color: COLORS.error, bars: true, values: volume.time_series.map((p) => p.error_count) },
      ],
    });

    const l = latency.summary;
    replace(
      this.latency.figures,
      ["p50", "p90", "p99"].map((q) => figure(`latency.${q}_latency`, q, l[`${q}_latency`], format.ms)),
      figure("latency.avg_latency", "average", l.avg_latency, format.ms),
    );
    timeChart(this.charts.latency, {
      times: latency.time_series.map((p) => p.time_bucket),
      zone: ctx.zone,
      unit: " ms",
      series: ["p50", "p90", "p99"].map((q) => ({
        label: q,
        color: COLORS[q],
        values: latency.time_series.map((p) => p[`${q}_latency`]),
      })),
    });

    const e = errors.summary;
    replace(
      this.errors.figures,
      figure("errors.error_rate", "error rate", e.error_rate, format.percent),
      figure("errors.error_count", "errors", e.error_count),
      figure("errors.total_count", "traces", e.total_count),
    );
    timeChart(this.charts.errors, {
      times: errors.time_series.map((p) => p.time_bucket),
      zone: ctx.zone,
      unit: "%",
      series: [
        {
          label: "error rate",
          color: COLORS.error,
          values: errors.time_series.map((p) => (p.total_count ? p.error_rate : null)),
        },
      ],
    });

    this.showCost(ctx, cost);
    this.showTokens(ctx, tokens);
    await Promise.all(Object.values(this.charts).map(drawn));
    performance.mark("ti:traffic:charts");

    const blocks = [];
    if (l.p90_latency !== null) {
      const threshold = Math.round(l.p90_latency);
      blocks.push(
        correlationBlock(this.latency.correlations, ctx, {
          filter_string: `trace.execution_time_ms > ${threshold}`,
          label: `latency > ${format.ms(threshold)} (p90)`,
        }),
      );
    } else replace(this.latency.correlations, empty("No traces in this range"));
    if (e.error_count) {
      blocks.push(
        correlationBlock(this.errors.correlations, ctx, {
          dimension: { name: "status", parameters: { value: "ERROR" } },
          label: "status = ERROR",
        }),
      );
    } else replace(this.errors.correlations, empty("No errors in this range"));
    if (this.model) {
      blocks.push(
        correlationBlock(this.tokens.correlations, ctx, {
          dimension: { name: "model", parameters: { value: this.model } },
          label: `model = ${this.model}`,
        }),
      );
    } else replace(this.tokens.correlations);
    await Promise.all(blocks);
  }

  showCost(ctx, cost) {
    const s = cost.summary;
    replace(
      this.cost.figures,
      figure("cost.cost", "USD", s.cost, format.usd),
      figure("cost.unpriced_calls", "unpriced calls", s.unpriced_calls),
    );
    timeChart(this.charts.cost, {
      times: cost.time_series.map((p) => p.time_bucket),
      zone: ctx.zone,
      unit: " USD",
      series: [
        { label: "cost", color: COLORS.accent, bars: true, values: cost.time_series.map((p) => Number(p.cost)) },
      ],
    });
    const unpriced = cost.meta.unpriced_models;
    replace(
      this.cost.notes,
      cost.providers.length
        ? h(
            "p",
            { class: "providers" },
            cost.providers.flatMap((p, i) => [
              i ? " · " : "",
              h(
                "span",
                { dataset: { provider: p.provider ?? "" } },
                `${p.provider ?? "provider not reported"} ${format.usd(p.cost)}`,
              ),
            ]),
          )
        : null,
      unpriced.length
        ? h(
            "p",
            { class: "unpriced", role: "note" },
            "No price for ",
            unpriced.flatMap((m, i) => [
              i ? ", " : "",
              h("strong", {}, m.model),
              ` (${format.count(m.call_count)} calls)`,
            ]),
            ": their tokens are counted, their cost is in no figure. Price them with an override (POST …/insights/prices).",
          )
        : null,
    );
  }

  showTokens(ctx, tokens) {
    const s = tokens.summary;
    const models = tokens.models;
    if (!models.some((m) => m.model === this.model)) this.model = models[0]?.model ?? null;
    replace(
      this.tokens.content,
      h(
        "div",
        { class: "figures" },
        figure("tokens.total_tokens", "tokens", s.total_tokens),
        figure("tokens.input_tokens", "input", s.input_tokens),
        figure("tokens.output_tokens", "output", s.output_tokens),
      ),
      models.length
        ? h(
            "div",
            { class: "scroll" },
            h(
              "table",
              { "aria-label": "Tokens by model" },
              h(
                "thead",
                {},
                h(
                  "tr",
                  {},
                  h("th", {}, "model"),
                  h("th", { class: "num" }, "calls"),
                  h("th", { class: "num" }, "input"),
                  h("th", { class: "num" }, "output"),
                  h("th", { class: "num" }, "total"),
                  h("th", { class: "num" }, "cost"),
                ),
              ),
              h(
                "tbody",
                {},
                models.map((m) =>
                  h(
                    "tr",
                    { class: m.model === this.model ? "selected" : "", dataset: { model: m.model } },
                    h(
                      "td",
                      {},
                      h(
                        "button",
                        {
                          type: "button",
                          class: "link",
                          "aria-pressed": String(m.model === this.model),
                          title: "Correlations of this model's traces",
                          onclick: () => {
                            this.model = m.model;
                            this.update(ctx);
                          },
                        },
                        m.model,
                      ),
                      h(
                        "span",
                        { class: "bar", role: "presentation" },
                        h("span", {
                          style: `width:${(100 * m.total_tokens) / Math.max(1, ...models.map((x) => x.total_tokens))}%`,
                        }),
                      ),
                    ),
                    h("td", { class: "num", dataset: { value: m.call_count } }, format.count(m.call_count)),
                    h("td", { class: "num", dataset: { value: m.input_tokens } }, format.count(m.input_tokens)),
                    h("td", { class: "num", dataset: { value: m.output_tokens } }, format.count(m.output_tokens)),
                    h("td", { class: "num", dataset: { value: m.total_tokens } }, format.count(m.total_tokens)),
                    h(
                      "td",
                      { class: m.cost === null ? "num unpriced" : "num", dataset: { value: m.cost ?? "" } },
                      format.usd(m.cost),
                    ),
                  ),
                ),
              ),
            ),
          )
        : empty("No model calls in this range"),
    );
  }
}
