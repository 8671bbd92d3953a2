// A card's correlation block: its slice (error traces, slow traces, a failing assessment…)
// against every discovered dimension — the top 5 by NPMI above 0.2 with at least the minimum
// support, as the API ranks them. A partner becomes the slice of "What's different", or opens
// its traces.

import { insights } from "./api.js";
import { format, h, replace } from "./dom.js";

export const SHOWN = 5;
export const THRESHOLD = 0.2;
export const MIN_SUPPORT = 5;

// The slice as the request's fields: {dimension} or {filter_string}.
export function sliceBody(slice) {
  return slice.filter_string ? { filter_string: slice.filter_string } : { dimension: slice.dimension };
}

// "status = ERROR", "tools.search = error", and for thresholds "latency > 2000".
export function sliceLabel(dimension, value) {
  const threshold = /^([<>]=?)(.*)$/.exec(value);
  return threshold ? `${dimension} ${threshold[1]} ${threshold[2]}` : `${dimension} = ${value}`;
}

export async function correlationBlock(el, ctx, slice, { title } = {}) {
  el.classList.add("correlations");
  el.dataset.slice = slice.label;
  replace(el, h("h4", {}, title ?? `Correlated with ${slice.label}`), h("p", { class: "empty" }, "…"));
  let answer;
  try {
    answer = await insights("dimensions/correlations", {
      ...ctx.window,
      ...sliceBody(slice),
      limit: SHOWN,
      min_support: MIN_SUPPORT,
    });
  } catch (error) {
    replace(el, h("h4", {}, title ?? `Correlated with ${slice.label}`), h("p", { class: "error" }, error.message));
    return null;
  }
  const partners = answer.data.filter((p) => p.npmi_score !== null && p.npmi_score > THRESHOLD);
  const sliceFilter = answer.dimension.filter_string;
  const heading = h(
    "h4",
    {},
    title ?? `Correlated with ${slice.label}`,
    " ",
    sliceFilter ? ctx.tracesLink(sliceFilter, `${format.count(answer.dimension.count)} traces`) : null,
  );
  if (answer.dimension.count === answer.total_count) {
    replace(el, heading, h("p", { class: "empty" }, "Every trace in the range is in this slice"));
    return answer;
  }
  if (!partners.length) {
    replace(el, heading, h("p", { class: "empty" }, "No correlations found"));
    return answer;
  }
  replace(
    el,
    heading,
    h(
      "ol",
      {},
      partners.map((p) =>
        h(
          "li",
          { dataset: { partner: `${p.dimension}=${p.value}`, npmi: p.npmi_score } },
          h(
            "button",
            {
              type: "button",
              class: "link",
              title: "Make this the slice",
              onclick: () =>
                ctx.explore({
                  dimension: { name: p.dimension, parameters: p.parameters },
                  label: sliceLabel(p.dimension, p.value),
                }),
            },
            sliceLabel(p.dimension, p.value),
          ),
          h("span", { class: "strength" }, `${p.strength} · ${p.npmi_score.toFixed(2)}`),
          h(
            "span",
            { class: "bar", role: "presentation" },
            h("span", { style: `width:${Math.max(2, 100 * p.npmi_score)}%` }),
          ),
          h(
            "span",
            { class: "support" },
            `${format.count(p.trace_count)} traces · ${format.percent(p.percentage_of_slice)} of slice · ${format.percent(p.percentage_of_total)} of total `,
            sliceFilter && p.filter_string
              ? ctx.tracesLink(`(${sliceFilter}) AND (${p.filter_string})`, "view traces")
              : null,
          ),
        ),
      ),
    ),
  );
  return answer;
}
