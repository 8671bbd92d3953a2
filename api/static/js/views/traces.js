// Traces: the filter language (its parse errors shown where they are), the matching traces a
// page at a time (keyset pagination), and one trace as a span waterfall with its attributes,
// assessments and a feedback form.

import { ApiError, call, traceFacts } from "../api.js";
import { card, empty, format, h, replace } from "../dom.js";

const PAGE = 25;
const TRACES = "/api/3.0/mlflow/traces";

export default class Traces {
  constructor(root, ctx) {
    this.ctx = ctx;
    this.input = h("textarea", {
      id: "filter",
      rows: 2,
      "aria-label": "Filter",
      placeholder: "span.type = 'TOOL' AND trace.status = 'ERROR'",
      onkeydown: (event) => {
        if (event.key === "Enter" && !event.shiftKey) {
          event.preventDefault();
          this.form.requestSubmit();
        }
      },
    });
    this.form = h(
      "form",
      {
        class: "filterbar",
        onsubmit: (event) => {
          event.preventDefault();
          this.ctx.set("filter", this.input.value.trim() || null);
        },
      },
      this.input,
      h("button", { type: "submit" }, "Search"),
    );
    this.problem = h("div", { role: "alert" });
    this.list = h("div");
    this.detail = h("div");
    root.append(
      h("div", { class: "toolbar" }, h("h1", {}, "Traces")),
      this.form,
      this.problem,
      this.detail,
      h("div", { class: "card wide" }, this.list),
    );
  }

  keep(params) {
    return true;
  }

  async update(ctx) {
    this.ctx = ctx;
    const filter = ctx.params.get("filter") || "";
    if (document.activeElement !== this.input) this.input.value = filter;
    const traceId = ctx.params.get("trace");
    const key = JSON.stringify([
      filter,
      ctx.window.experiment_ids,
      ctx.params.get("range"),
      ctx.params.get("from"),
      ctx.params.get("to"),
    ]);
    if (key !== this.listed) {
      this.listed = key;
      await this.search(ctx, filter);
    }
    if (traceId) await this.open(ctx, traceId);
    else this.detail.replaceChildren();
  }

  body(ctx, filter, pageToken) {
    const w = ctx.window;
    return {
      experiment_ids: w.experiment_ids,
      start_time: Math.floor(w.start_time),
      end_time: Math.ceil(w.end_time),
      filter: filter || undefined,
      order_by: ["timestamp_ms DESC"],
      max_results: PAGE,
      page_token: pageToken ?? undefined,
    };
  }

  async search(ctx, filter) {
    this.problem.replaceChildren();
    let page;
    try {
      page = await call("POST", `${TRACES}/search`, this.body(ctx, filter));
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 400) throw error;
      this.showProblem(filter, error.message);
      replace(this.list, empty("Fix the filter to see traces"));
      return;
    }
    this.rows = h("tbody");
    replace(
      this.list,
      h(
        "div",
        { class: "scroll" },
        h(
          "table",
          { "aria-label": "Traces" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", {}, "time"),
              h("th", {}, "status"),
              h("th", { class: "num" }, "latency"),
              h("th", { class: "num" }, "tokens"),
              h("th", { class: "num" }, "cost"),
              h("th", {}, "name"),
              h("th", {}, "tags"),
            ),
          ),
          this.rows,
        ),
      ),
    );
    this.more = h("p");
    this.list.append(this.more);
    this.append(ctx, filter, page);
  }

  append(ctx, filter, page) {
    if (!page.traces.length && !this.rows.children.length) {
      replace(this.list, empty("No traces match in this range"));
      return;
    }
    for (const t of page.traces) {
      const facts = traceFacts(t);
      const open = () => ctx.set("trace", t.trace_id);
      this.rows.append(
        h(
          "tr",
          { class: "clickable", dataset: { trace: t.trace_id }, onclick: open },
          h(
            "td",
            { class: "nowrap" },
            h(
              "a",
              { href: "#", onclick: (event) => (event.preventDefault(), open()) },
              format.time(facts.startMs, ctx.zone),
            ),
          ),
          h("td", { class: `status-${t.state}` }, t.state),
          h("td", { class: "num nowrap" }, format.ms(facts.durationMs)),
          h("td", { class: "num" }, format.count(facts.totalTokens)),
          h("td", { class: "num" }, facts.cost === null ? "–" : format.usd(facts.cost)),
          h("td", {}, facts.name ?? "–"),
          h(
            "td",
            {},
            Object.entries(t.tags)
              .filter(([k]) => !k.startsWith("mlflow."))
              .map(([k, v]) => h("span", { class: "tagchip" }, `${k}=${v}`)),
          ),
        ),
      );
    }
    replace(
      this.more,
      page.next_page_token
        ? h(
            "button",
            {
              type: "button",
              onclick: async () => {
                const next = await call("POST", `${TRACES}/search`, this.body(ctx, filter, page.next_page_token));
                this.append(ctx, filter, next);
              },
            },
            "Load more",
          )
        : `${format.count(this.rows.children.length)} traces`,
    );
  }

  showProblem(filter, message) {
    const at = /position (\d+)/.exec(message);
    const children = [h("div", {}, message)];
    if (at && filter) {
      const position = Number(at[1]);
      const lineStart = filter.lastIndexOf("\n", position - 1) + 1;
      const lineEnd = filter.indexOf("\n", position);
      const line = filter.slice(lineStart, lineEnd < 0 ? undefined : lineEnd);
      children.push(h("div", {}, line), h("div", { "aria-hidden": "true" }, `${" ".repeat(position - lineStart)}^`));
    }
    replace(this.problem, h("div", { class: "parse-error", dataset: { problem: "filter" } }, children));
  }

  async open(ctx, traceId) {
    let trace;
    try {
      ({ trace } = await call("GET", `${TRACES}/${encodeURIComponent(traceId)}`));
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        replace(this.detail, h("section", { class: "card wide" }, empty(`Trace ${traceId} was not found`)));
        return;
      }
      throw error;
    }
    const info = trace.trace_info;
    const facts = traceFacts(info);
    const spans = trace.data.spans;
    const c = card(facts.name ?? info.trace_id, { wide: true, name: "trace" });
    c.heading.append(
      h("span", { class: `status-${info.state}` }, info.state),
      h("button", { type: "button", onclick: () => ctx.set("trace", null) }, "Close"),
    );
    const attributes = h("div");
    const waterfall = this.waterfall(spans, (span) => {
      replace(
        attributes,
        h("h3", {}, span.name),
        span.status_message ? h("p", { class: "error" }, span.status_message) : null,
        h("pre", { class: "attributes", "aria-label": "Attributes" }, JSON.stringify(span.attributes, null, 2)),
        span.events.length ? h("p", { class: "events" }, h("strong", {}, "Events: "), span.events.join(" · ")) : null,
        usageLine(span),
      );
    });
    c.body.append(
      h(
        "p",
        {},
        `${info.trace_id} · ${format.time(facts.startMs, ctx.zone)} · ${format.ms(facts.durationMs)} · ${format.count(spans.length)} spans · ${format.count(facts.totalTokens)} tokens${facts.cost === null ? "" : ` · ${format.usd(facts.cost)}`}`,
      ),
      waterfall,
      attributes,
      this.assessments(ctx, info),
    );
    replace(this.detail, c.el);
    waterfall.querySelector("button")?.click();
  }

  waterfall(spans, onSelect) {
    const t0 = Math.min(...spans.map((s) => s.start_time_unix_nano));
    const t1 = Math.max(...spans.map((s) => s.end_time_unix_nano));
    const total = Math.max(1, t1 - t0);
    const children = new Map();
    const ids = new Set(spans.map((s) => s.span_id));
    for (const s of spans) {
      const parent = s.parent_span_id && ids.has(s.parent_span_id) ? s.parent_span_id : null;
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(s);
    }
    const ordered = [];
    const walk = (parent, depth) => {
      for (const s of (children.get(parent) ?? []).sort((a, b) => a.start_time_unix_nano - b.start_time_unix_nano)) {
        ordered.push([s, depth]);
        walk(s.span_id, depth + 1);
      }
    };
    walk(null, 0);
    const list = h("div", { class: "waterfall", role: "list", "aria-label": "Spans on a time axis" });
    for (const [s, depth] of ordered) {
      const left = (100 * (s.start_time_unix_nano - t0)) / total;
      const width = (100 * (s.end_time_unix_nano - s.start_time_unix_nano)) / total;
      const marks = [
        s.span_type !== "UNKNOWN" ? s.span_type : null,
        s.tool_name && `tool ${s.tool_name}`,
        s.model && `model ${s.model}`,
      ].filter(Boolean);
      const row = h(
        "button",
        {
          type: "button",
          class: "span-row",
          role: "listitem",
          "aria-pressed": "false",
          dataset: { span: s.span_id },
          onclick: () => {
            for (const other of list.children) other.setAttribute("aria-pressed", String(other === row));
            onSelect(s);
          },
        },
        h(
          "span",
          { class: "span-name", style: `padding-left:${depth}rem` },
          marks.map((m) => h("span", { class: "kind" }, m)),
          s.name,
        ),
        h(
          "span",
          {
            class: "span-track",
            title: `${format.ms(s.duration_ms)} from +${format.ms((s.start_time_unix_nano - t0) / 1e6)}`,
          },
          h("span", { class: `span-bar ${s.status}`, style: `left:${left}%;width:${width}%` }),
        ),
      );
      list.append(row);
    }
    return list;
  }

  assessments(ctx, info) {
    const section = h("div", {}, h("h3", {}, "Assessments"));
    section.append(
      info.assessments.length
        ? h(
            "table",
            {},
            h(
              "tbody",
              {},
              info.assessments.map((a) =>
                h(
                  "tr",
                  { class: a.valid ? null : "overridden" },
                  h("td", {}, a.assessment_name),
                  h(
                    "td",
                    {},
                    a.feedback ? String(a.feedback.value) : `expected: ${JSON.stringify(a.expectation.value)}`,
                  ),
                  h("td", {}, a.source.source_type),
                  h("td", {}, a.valid ? (a.rationale ?? "") : `overridden${a.rationale ? ` · ${a.rationale}` : ""}`),
                ),
              ),
            ),
          )
        : empty("No assessments yet"),
    );
    const problem = h("p", { class: "error", role: "alert" });
    const form = h(
      "form",
      {
        class: "stack",
        "aria-label": "Add feedback",
        onsubmit: async (event) => {
          event.preventDefault();
          const data = new FormData(form);
          const raw = String(data.get("value")).trim();
          const value =
            raw === "true"
              ? true
              : raw === "false"
                ? false
                : raw !== "" && !Number.isNaN(Number(raw))
                  ? Number(raw)
                  : raw;
          try {
            await call("POST", `${TRACES}/${encodeURIComponent(info.trace_id)}/assessments`, {
              assessment: {
                assessment_name: String(data.get("name")).trim(),
                source: { source_type: "HUMAN", source_id: String(data.get("source") || "") || null },
                feedback: { value },
                rationale: String(data.get("rationale") || "") || null,
              },
            });
          } catch (error) {
            problem.textContent = error.message;
            return;
          }
          problem.textContent = "";
          replace(
            form,
            h("p", { role: "status" }, "Feedback recorded; it is counted once the aggregator has applied it."),
          );
        },
      },
      h("h3", {}, "Add feedback"),
      h("label", {}, "Name", h("input", { name: "name", required: true, value: "correct" })),
      h(
        "label",
        {},
        "Value (yes/no, true/false, a number or text)",
        h("input", { name: "value", required: true, value: "yes" }),
      ),
      h("label", {}, "Rationale", h("input", { name: "rationale" })),
      h("label", {}, "Your name", h("input", { name: "source" })),
      problem,
      h("button", { type: "submit" }, "Add feedback"),
    );
    section.append(form);
    return section;
  }
}

const USAGE = {
  cache_read_tokens: "cache read",
  cache_write_tokens: "cache write",
  output_reasoning_tokens: "reasoning",
};

function usageLine(span) {
  const parts = Object.entries(span.usage).map(([k, n]) => `${USAGE[k] ?? k} ${format.count(n)}`);
  if (span.input_tokens == null && span.output_tokens == null && !parts.length) return null;
  const tokens = `${format.count(span.input_tokens ?? 0)} in · ${format.count(span.output_tokens ?? 0)} out`;
  const priced =
    span.cost !== null || span.model
      ? [" · ", h("strong", {}, "Cost: "), format.usd(span.cost), span.priced_by ? ` (${span.priced_by})` : ""]
      : [];
  return h("p", { class: "usage" }, h("strong", {}, "Tokens: "), [tokens, ...parts].join(" · "), priced);
}
