// Tags: one card per tag key (MLflow's own mlflow.* keys hidden) with its top values (traces,
// share and cost); a
// clicked value becomes the slice of the page's correlation blocks until it is cleared.

import { insights } from "../api.js";
import { COLORS } from "../charts.js";
import { correlationBlock } from "../correlations.js";
import { bars, card, empty, figure, format, h, replace } from "../dom.js";

const TOP = 10;

// a value's cost, with the calls no price was found for said beside it
function spent(v) {
  if (!v.unpriced_calls || v.cost === null) return format.usd(v.cost);
  return `${format.usd(v.cost)} + ${format.count(v.unpriced_calls)} unpriced`;
}

export default class Tags {
  constructor(root) {
    this.selection = h("div", { role: "status", "aria-live": "polite" });
    this.grid = h("div", { class: "grid" });
    root.append(h("div", { class: "toolbar" }, h("h1", {}, "Tags")), this.selection, this.grid);
  }

  keep() {
    return true; // only the selection changes within this view
  }

  selected(ctx) {
    try {
      const s = JSON.parse(ctx.params.get("tag") || "null");
      return s && typeof s.key === "string" && typeof s.value === "string" ? s : null;
    } catch {
      return null;
    }
  }

  async update(ctx) {
    const discovery = await insights("tags/discovery", ctx.window);
    ctx.meta(discovery.meta);
    const keys = discovery.data.filter((t) => !t.tag_key.startsWith("mlflow."));
    const chosen = this.selected(ctx);
    replace(
      this.selection,
      chosen
        ? h(
            "div",
            { class: "slice" },
            `Slice: ${chosen.key} = ${chosen.value}`,
            h("button", { type: "button", onclick: () => ctx.set("tag", null) }, "Clear selection"),
          )
        : null,
    );
    if (!keys.length) {
      replace(this.grid, empty("No tags in this range"));
      return;
    }
    const cards = await Promise.all(keys.map((info) => this.one(ctx, info, chosen)));
    replace(this.grid, cards);
  }

  async one(ctx, info, chosen) {
    const key = info.tag_key;
    const c = card(key, { name: `tag:${key}` });
    const m = await insights("tags/metrics", { ...ctx.window, tag_key: key, limit: TOP });
    const values = m.data.filter((v) => v.value !== "__other__");
    const select = (value) => () =>
      ctx.set("tag", chosen?.key === key && chosen.value === value ? null : JSON.stringify({ key, value }));
    const correlations = h("div");
    c.body.append(
      h(
        "div",
        { class: "figures" },
        figure(`tag:${key}.trace_count`, "traces", m.summary.trace_count),
        figure(`tag:${key}.unique_values`, "distinct values", m.summary.unique_values),
      ),
      bars(
        values.map((v) => ({
          label: v.value,
          value: v.count,
          shown: `${format.count(v.count)} · ${format.percent(v.percentage)} · ${spent(v)}`,
          selected: chosen?.key === key && chosen.value === v.value,
          onclick: select(v.value),
        })),
        { color: COLORS.sky },
      ),
      correlations,
    );
    const value = chosen ?? (values[0] ? { key, value: values[0].value } : null);
    if (value) {
      await correlationBlock(correlations, ctx, {
        dimension: { name: `tags.${value.key}`, parameters: { value: value.value } },
        label: `${value.key} = ${value.value}`,
      });
    }
    return c.el;
  }
}
