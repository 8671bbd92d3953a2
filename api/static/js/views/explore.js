// What's different (BubbleUp's question for traces): pick a slice — a dimension or a filter —
// and see every dimension family side by side, each value's share in the slice against its
// share in the rest, ranked by NPMI; one click adds a value to the slice's filter.

import { insights } from "../api.js";
import { card, empty, format, h, replace } from "../dom.js";
import { sliceBody, sliceLabel } from "../correlations.js";

const PARTNERS = 1000;

export default class Explore {
  constructor(root, ctx) {
    this.input = h("textarea", {
      id: "slice-filter",
      rows: 2,
      "aria-label": "Slice as a filter",
      placeholder: "trace.status = 'ERROR'",
    });
    this.form = h(
      "form",
      {
        class: "filterbar",
        onsubmit: (event) => {
          event.preventDefault();
          const text = this.input.value.trim();
          ctx.set("slice", text ? JSON.stringify({ filter_string: text, label: text }) : null);
        },
      },
      this.input,
      h("button", { type: "submit" }, "Compare"),
    );
    this.picker = h("select", {
      id: "slice-dimension",
      onchange: () => {
        if (!this.picker.value) return;
        const [name, value] = JSON.parse(this.picker.value);
        ctx.set(
          "slice",
          JSON.stringify({ dimension: { name, parameters: { value } }, label: sliceLabel(name, value) }),
        );
      },
    });
    this.heading = h("div", { role: "status", "aria-live": "polite" });
    this.grid = h("div", { class: "explore-grid" });
    root.append(
      h("div", { class: "toolbar" }, h("h1", {}, "What's different")),
      h(
        "p",
        {},
        "The traces of a slice against all the others: each value's share in the slice (dark) and in the rest (light), families ranked by NPMI. + adds a value to the slice.",
      ),
      h(
        "div",
        { class: "toolbar" },
        h("label", {}, "Slice by a dimension ", this.picker),
        h("span", {}, "or by a filter:"),
      ),
      this.form,
      this.heading,
      this.grid,
    );
  }

  keep() {
    return true;
  }

  // Every discovered dimension asked by value, to pick as the slice; thresholds go by filter.
  async pickable(ctx, slice) {
    const { data } = await insights("dimensions/discovery", ctx.window);
    const current = slice.dimension ? JSON.stringify([slice.dimension.name, slice.dimension.parameters?.value]) : "";
    const groups = data
      .map((d) => [d, d.parameters.find((p) => p.name === "value")?.enum_values])
      .filter(([, values]) => values?.length)
      .map(([d, values]) =>
        h(
          "optgroup",
          { label: d.display_name },
          values.map((value) => {
            const key = JSON.stringify([d.name, value]);
            return h("option", { value: key, selected: key === current }, sliceLabel(d.name, value));
          }),
        ),
      );
    replace(
      this.picker,
      h("option", { value: "", selected: !current }, slice.filter_string ? "(the filter below)" : "choose…"),
      groups,
    );
  }

  slice(ctx) {
    try {
      const s = JSON.parse(ctx.params.get("slice") || "null");
      if (s && (s.filter_string || s.dimension?.name)) return s;
    } catch {
      // an unreadable slice in a hand-edited link: start from the default
    }
    return { dimension: { name: "status", parameters: { value: "ERROR" } }, label: "status = ERROR" };
  }

  async update(ctx) {
    const slice = this.slice(ctx);
    await this.pickable(ctx, slice);
    let answer;
    try {
      answer = await insights("dimensions/correlations", {
        ...ctx.window,
        ...sliceBody(slice),
        limit: PARTNERS,
        min_support: 1,
      });
    } catch (error) {
      replace(this.heading, h("p", { class: "error parse-error", role: "alert" }, error.message));
      this.grid.replaceChildren();
      return;
    }
    ctx.meta(answer.meta);
    const sliceFilter = answer.dimension.filter_string;
    if (document.activeElement !== this.input) this.input.value = sliceFilter ?? "";
    const inSlice = answer.dimension.count;
    const rest = answer.total_count - inSlice;
    replace(
      this.heading,
      h(
        "p",
        { class: "slice" },
        `Slice: ${slice.label ?? sliceFilter} — ${format.count(inSlice)} of ${format.count(answer.total_count)} traces `,
        sliceFilter ? ctx.tracesLink(sliceFilter, "view traces") : null,
      ),
    );
    if (!inSlice) {
      replace(this.grid, empty("No traces in this slice in the range"));
      return;
    }
    const families = new Map();
    for (const p of answer.data) {
      if (!families.has(p.dimension)) families.set(p.dimension, []);
      families.get(p.dimension).push(p);
    }
    const cards = [...families.entries()]
      .map(([family, values]) => ({ family, values, best: Math.max(...values.map((v) => v.npmi_score ?? -1)) }))
      .sort((a, b) => b.best - a.best)
      .map(({ family, values }) => {
        const c = card(family, { name: `family:${family}` });
        c.body.append(
          h(
            "ol",
            { class: "bars" },
            values.slice(0, 8).map((p) => {
              const sliceShare = p.percentage_of_slice;
              const restShare = rest > 0 ? (100 * (p.count - p.trace_count)) / rest : 0;
              const add = () => {
                const combined =
                  sliceFilter && p.filter_string ? `(${sliceFilter}) AND (${p.filter_string})` : p.filter_string;
                ctx.set("slice", JSON.stringify({ filter_string: combined, label: combined }));
              };
              return h(
                "li",
                { class: "share-row", dataset: { partner: `${p.dimension}=${p.value}` } },
                h("span", { class: "name", title: sliceLabel(p.dimension, p.value) }, p.value),
                h(
                  "span",
                  { class: "share" },
                  h("span", {}, format.percent(sliceShare)),
                  h(
                    "span",
                    {
                      role: "img",
                      "aria-label": `${format.percent(sliceShare)} of the slice, ${format.percent(restShare)} of the rest`,
                    },
                    h("span", { class: "bar" }, h("span", { style: `width:${sliceShare}%` })),
                    h("span", { class: "bar" }, h("span", { class: "rest", style: `width:${restShare}%` })),
                  ),
                  h("span", {}, format.percent(restShare)),
                ),
                h(
                  "span",
                  { class: "count" },
                  p.npmi_score === null ? "–" : p.npmi_score.toFixed(2),
                  " ",
                  p.filter_string
                    ? h(
                        "button",
                        { type: "button", title: `Add ${sliceLabel(p.dimension, p.value)} to the slice`, onclick: add },
                        "+",
                      )
                    : null,
                ),
              );
            }),
          ),
        );
        return c.el;
      });
    replace(this.grid, cards);
  }
}
