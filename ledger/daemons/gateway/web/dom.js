// Small DOM and formatting helpers: elements without innerHTML (nothing from the API is ever
// parsed as markup), times, and SVG sparklines.

const SVG_NS = "http://www.w3.org/2000/svg";

function fill(node, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

export function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function clear(node, ...children) {
  node.replaceChildren();
  return fill(node, null, children);
}

const RELATIVE = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const STEPS = [[60, "second"], [60, "minute"], [24, "hour"], [30, "day"], [12, "month"], [Infinity, "year"]];

export function ago(iso) {
  if (!iso) return "";
  let amount = (Date.parse(iso) - Date.now()) / 1000;
  for (const [size, unit] of STEPS) {
    if (Math.abs(amount) < size) return RELATIVE.format(Math.round(amount), unit);
    amount /= size;
  }
  return iso;
}

const CLOCK = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const FULL = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

export function clock(iso) { return iso ? CLOCK.format(new Date(iso)) : ""; }
export function when(iso) { return iso ? FULL.format(new Date(iso)) : ""; }

export function time(iso, text) {
  return h("time", { datetime: iso, title: when(iso) }, text ?? ago(iso));
}

// Milliseconds since the epoch from a UUIDv7 (ingest stamps ids when it accepts a log).
export function uuidv7Millis(id) {
  const hex = String(id || "").replace(/-/g, "");
  if (hex.length !== 32 || hex[12] !== "7") return null;
  return parseInt(hex.slice(0, 12), 16);
}

export function level(name) {
  return h("span", { class: `level level-${name}`, text: name });
}

// Hourly counts of the last `hours` hours (oldest first) from ISO timestamps.
export function hourly(timestamps, hours = 24, now = Date.now()) {
  const counts = new Array(hours).fill(0);
  for (const iso of timestamps) {
    const age = Math.floor((now - Date.parse(iso)) / 3_600_000);
    if (age >= 0 && age < hours) counts[hours - 1 - age] += 1;
  }
  return counts;
}

export function sparkline(values, { width = 96, height = 22, label = "" } = {}) {
  const max = Math.max(1, ...values);
  const step = width / Math.max(1, values.length);
  const bars = values.map((value, i) => {
    const tall = value ? Math.max(1.5, (value / max) * (height - 2)) : 0.75;
    return s("rect", { x: (i * step + 0.5).toFixed(1), y: (height - tall).toFixed(1),
      width: Math.max(1, step - 1).toFixed(1), height: tall.toFixed(1), class: value ? "bar" : "bar zero" });
  });
  return s("svg", { class: "spark", viewBox: `0 0 ${width} ${height}`, width, height,
    role: "img", "aria-label": label || `${values.reduce((a, b) => a + b, 0)} events in the last ${values.length} hours` },
    s("title", null, label || values.join(", ")), bars);
}

export function notice(kind, ...children) {
  return h("p", { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" }, children);
}

export function field(label, control) {
  return h("label", { class: "field" }, h("span", null, label), control);
}

export function select(name, options, value) {
  return h("select", { name },
    options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
}
