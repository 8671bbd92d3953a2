// Building the page: elements from a tag, attributes and children; figures and cards, the
// pieces every view is made of. Text always goes in as text, never as HTML.

export function h(tag, attributes = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });

const dollars = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
const cents = new Intl.NumberFormat("en-US", {
  style: "currency",
  currency: "USD",
  maximumSignificantDigits: 3,
});

export const format = {
  count: (n) => (n === null || n === undefined ? "–" : integer.format(n)),
  // the API's exact decimal strings of USD; null (nothing priced) is not $0
  usd: (text) => {
    if (text === null || text === undefined) return "unpriced";
    const n = Number(text);
    return n === 0 || n >= 1 ? dollars.format(n) : cents.format(n);
  },
  percent: (n) => (n === null || n === undefined ? "–" : `${decimal.format(n)}%`),
  ms: (n) => {
    if (n === null || n === undefined) return "–";
    if (Math.abs(n) < 1000) return `${integer.format(n)} ms`;
    return `${new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 }).format(n / 1000)} s`;
  },
  number: (n) =>
    n === null || n === undefined ? "–" : new Intl.NumberFormat("en-US", { maximumFractionDigits: 3 }).format(n),
  time: (ms, zone) =>
    new Intl.DateTimeFormat("en-GB", {
      timeZone: zone,
      year: "numeric",
      month: "short",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    }).format(new Date(ms)),
};

// A labelled number; data-figure names it and data-value holds it unrounded, so a test (or a
// user's script) can read exactly what is shown.
export function figure(name, label, value, shown = format.count) {
  return h(
    "div",
    { class: "figure" },
    h("span", { class: "value", dataset: { figure: name, value: value ?? "" } }, shown(value)),
    h("span", { class: "label" }, label),
  );
}

export function card(title, { wide = false, name } = {}) {
  const heading = h("h2", {}, title);
  const body = h("div", { class: "body" });
  const el = h("section", { class: `card${wide ? " wide" : ""}`, dataset: { card: name ?? title } }, heading, body);
  return { el, heading, body };
}

export function empty(text) {
  return h("p", { class: "empty" }, text);
}

export function failure(error) {
  return h("p", { class: "error", role: "alert" }, error.message || String(error));
}

// Horizontal bars: rows of {label, value, shown, title, onclick, selected}; a row with an
// onclick is a button, so the keyboard reaches it.
export function bars(rows, { color, max } = {}) {
  const top = max ?? Math.max(1, ...rows.map((r) => r.value || 0));
  return h(
    "ul",
    { class: "bars" },
    rows.map((row) =>
      h(
        "li",
        { class: row.selected ? "selected" : "", dataset: { label: row.label } },
        row.onclick
          ? h(
              "button",
              {
                type: "button",
                class: "name",
                title: row.label,
                onclick: row.onclick,
                "aria-pressed": row.selected ? "true" : "false",
              },
              row.label,
            )
          : h("span", { class: "name", title: row.label }, row.label),
        h(
          "span",
          { class: "bar", role: "presentation" },
          h("span", { style: `width:${(100 * (row.value || 0)) / top}%${color ? `;background:${color}` : ""}` }),
        ),
        h("span", { class: "count", dataset: { value: row.value } }, row.shown ?? format.count(row.value)),
      ),
    ),
  );
}
