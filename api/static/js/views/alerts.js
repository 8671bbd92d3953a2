// Alerts: the rules and their state, a form to create or edit one (the API's validation
// message shown in the form), and the deliveries log of a rule.

import { ApiError, INSIGHTS, call } from "../api.js";
import { card, empty, format, h, replace } from "../dom.js";

const RULES = `${INSIGHTS}/alerts`;
const METRICS = {
  error_rate: "error rate (%)",
  trace_count: "trace count",
  latency_p50: "latency p50 (ms)",
  latency_p90: "latency p90 (ms)",
  latency_p99: "latency p99 (ms)",
  tool_error_rate: "tool error rate (%)",
  token_count: "token count",
  cost: "cost (USD)",
  assessment_failure_rate: "assessment failure rate (%)",
};
const NEEDS = { tool_error_rate: "tool_name", assessment_failure_rate: "assessment_name" };
// what a cost rule watches: all calls, one model's, one tag value's, or (a tag key alone) the
// costliest value of a key — "any user above $5"
const COST_OF = { model: "Model", tag_key: "Tag key (alone: its costliest value)", tag_value: "Tag value" };

function costOf(parameters) {
  if (parameters.model) return ` · ${parameters.model}`;
  if (parameters.tag_key && parameters.tag_value) return ` · ${parameters.tag_key} = ${parameters.tag_value}`;
  if (parameters.tag_key) return ` · any ${parameters.tag_key}`;
  return "";
}

export default class Alerts {
  constructor(root) {
    this.list = h("div");
    this.editor = h("div");
    this.log = h("div");
    root.append(
      h(
        "div",
        { class: "toolbar" },
        h("h1", {}, "Alerts"),
        h("button", { type: "button", onclick: () => this.ctx.set("rule", "new") }, "New rule"),
      ),
      h("div", { class: "grid" }, h("div", { class: "card wide" }, this.list), this.editor, this.log),
    );
  }

  keep() {
    return true;
  }

  async update(ctx) {
    this.ctx = ctx;
    const { rules } = await call("GET", RULES);
    const shown = rules.filter((r) => r.experiment_ids.some((e) => ctx.window.experiment_ids.includes(e)));
    replace(
      this.list,
      shown.length
        ? h(
            "div",
            { class: "scroll" },
            h(
              "table",
              { "aria-label": "Alert rules" },
              h(
                "thead",
                {},
                h(
                  "tr",
                  {},
                  ["rule", "metric", "condition", "window", "state", "last value", ""].map((t) => h("th", {}, t)),
                ),
              ),
              h(
                "tbody",
                {},
                shown.map((r) =>
                  h(
                    "tr",
                    { dataset: { rule: r.rule_id } },
                    h("td", {}, r.name),
                    h(
                      "td",
                      {},
                      METRICS[r.metric] ?? r.metric,
                      r.parameters.tool_name ? ` · ${r.parameters.tool_name}` : "",
                      r.parameters.assessment_name ? ` · ${r.parameters.assessment_name}` : "",
                      r.metric === "cost" ? costOf(r.parameters) : "",
                    ),
                    h("td", {}, `${r.comparator} ${r.threshold}${r.baseline ? ` vs a ${r.baseline} earlier` : ""}`),
                    h("td", {}, `${r.window_s} s`),
                    h("td", { class: r.state === "firing" ? "status-ERROR" : "status-OK" }, r.state),
                    h("td", { class: "num" }, r.last_value === null ? "–" : format.number(r.last_value)),
                    h(
                      "td",
                      {},
                      h("button", { type: "button", onclick: () => ctx.set("rule", r.rule_id) }, "Edit"),
                      " ",
                      h("button", { type: "button", onclick: () => this.remove(ctx, r) }, "Delete"),
                    ),
                  ),
                ),
              ),
            ),
          )
        : empty("No alert rules for this experiment yet"),
    );
    const chosen = ctx.params.get("rule");
    if (!chosen) {
      this.editor.replaceChildren();
      this.log.replaceChildren();
      return;
    }
    const rule = rules.find((r) => r.rule_id === chosen) ?? null;
    replace(this.editor, this.form(ctx, rule));
    if (rule) await this.deliveries(rule);
    else this.log.replaceChildren();
  }

  async remove(ctx, rule) {
    if (!confirm(`Delete the rule "${rule.name}"?`)) return;
    await call("DELETE", `${RULES}/${encodeURIComponent(rule.rule_id)}`);
    if (ctx.params.get("rule") === rule.rule_id) ctx.set("rule", null);
    else await this.update(ctx);
  }

  form(ctx, rule) {
    const c = card(rule ? `Edit ${rule.name}` : "New rule", { name: "rule-form" });
    const problem = h("p", { class: "error", role: "alert", dataset: { problem: "rule" } });
    const field = (label, input) => h("label", {}, label, input);
    const metric = h(
      "select",
      { name: "metric", disabled: !!rule },
      Object.entries(METRICS).map(([value, text]) => h("option", { value, selected: rule?.metric === value }, text)),
    );
    const parameter = h("input", {
      name: "parameter",
      value: rule ? (rule.parameters.tool_name ?? rule.parameters.assessment_name ?? "") : "",
      disabled: !!rule,
    });
    const parameterLabel = h("label", {}, h("span", {}, "Tool or assessment name"), parameter);
    const costInputs = Object.fromEntries(
      Object.keys(COST_OF).map((name) => [
        name,
        h("input", { name, value: rule?.parameters[name] ?? "", disabled: !!rule }),
      ]),
    );
    const costLabels = h(
      "div",
      { class: "stack" },
      Object.entries(COST_OF).map(([name, text]) =>
        h("label", {}, h("span", {}, `${text} (optional)`), costInputs[name]),
      ),
    );
    const syncParameter = () => {
      parameterLabel.hidden = !NEEDS[metric.value];
      costLabels.hidden = metric.value !== "cost";
    };
    metric.addEventListener("change", syncParameter);
    syncParameter();
    const form = h(
      "form",
      {
        class: "stack",
        "aria-label": c.heading.textContent,
        onsubmit: async (event) => {
          event.preventDefault();
          const data = new FormData(form);
          const body = {
            name: String(data.get("name")).trim(),
            comparator: String(data.get("comparator")),
            threshold: data.get("threshold") === "" ? null : Number(data.get("threshold")),
            window_s: Number(data.get("window_s")),
            min_traces: Number(data.get("min_traces")),
            cooldown_s: Number(data.get("cooldown_s")),
            webhooks: String(data.get("webhooks")).split(/\s+/).filter(Boolean),
          };
          try {
            if (rule) {
              await call("PATCH", `${RULES}/${encodeURIComponent(rule.rule_id)}`, body);
              problem.textContent = "";
              await this.update(ctx);
            } else {
              const m = metric.value;
              const parameters = NEEDS[m] ? { [NEEDS[m]]: parameter.value.trim() || null } : {};
              if (m === "cost") {
                for (const [name, input] of Object.entries(costInputs)) {
                  if (input.value.trim()) parameters[name] = input.value.trim();
                }
              }
              const created = await call("POST", RULES, {
                ...body,
                experiment_ids: ctx.window.experiment_ids,
                metric: m,
                parameters,
              });
              ctx.set("rule", created.rule_id);
            }
          } catch (error) {
            if (!(error instanceof ApiError) || error.status !== 400) throw error;
            problem.textContent = error.message;
          }
        },
      },
      field("Name", h("input", { name: "name", required: true, value: rule?.name ?? "" })),
      field("Metric", metric),
      parameterLabel,
      costLabels,
      field(
        "Comparator",
        h(
          "select",
          { name: "comparator" },
          [">", ">=", "<", "<="].map((v) => h("option", { value: v, selected: (rule?.comparator ?? ">") === v }, v)),
        ),
      ),
      field("Threshold", h("input", { name: "threshold", type: "number", step: "any", value: rule?.threshold ?? "" })),
      field("Window (seconds)", h("input", { name: "window_s", type: "number", value: rule?.window_s ?? 300 })),
      field(
        "Fewest traces to decide",
        h("input", { name: "min_traces", type: "number", value: rule?.min_traces ?? 1 }),
      ),
      field(
        "Quiet time after a notification (seconds)",
        h("input", { name: "cooldown_s", type: "number", value: rule?.cooldown_s ?? 300 }),
      ),
      field(
        "Webhooks (one URL per line)",
        h("textarea", { name: "webhooks", rows: 2 }, (rule?.webhooks ?? []).join("\n")),
      ),
      problem,
      h("button", { type: "submit" }, rule ? "Save" : "Create"),
    );
    c.body.append(form);
    return c.el;
  }

  async deliveries(rule) {
    const { deliveries } = await call("GET", `${RULES}/${encodeURIComponent(rule.rule_id)}/deliveries`);
    const c = card(`Deliveries of ${rule.name}`, { name: "deliveries" });
    c.body.append(
      deliveries.length
        ? h(
            "table",
            {},
            h(
              "thead",
              {},
              h(
                "tr",
                {},
                ["when", "event", "target", "status", "attempts", "response"].map((t) => h("th", {}, t)),
              ),
            ),
            h(
              "tbody",
              {},
              deliveries.map((d) =>
                h(
                  "tr",
                  {},
                  h("td", {}, format.time(d.created, this.ctx.zone)),
                  h("td", {}, d.event),
                  h("td", {}, d.target),
                  h("td", {}, d.status),
                  h("td", { class: "num" }, d.attempts),
                  h("td", {}, d.response_status ?? d.last_error ?? "–"),
                ),
              ),
            ),
          )
        : empty("Nothing delivered yet"),
    );
    replace(this.log, c.el);
  }
}
