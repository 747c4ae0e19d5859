// Sign-in, the not-found page, the overview (analytics charts, when the server has them) and
// the keyboard help.

import { ApiError, api, signIn } from "./api.js";
import { clear, field, h, notice, s } from "./dom.js";

export function signInPage(main, { next, onSignedIn }) {
  const email = h("input", { type: "email", name: "email", autocomplete: "username", required: true, autofocus: true });
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
  const message = h("div", { "aria-live": "polite" });
  const submit = h("button", { type: "submit" }, "Sign in");
  const form = h("form", { class: "signin", onsubmit: async (e) => {
    e.preventDefault();
    submit.disabled = true;
    try {
      await signIn(email.value.trim(), password.value);
      onSignedIn(next && next.startsWith("/") && !next.startsWith("//") ? next : "/");
    } catch (error) {
      const text = error instanceof ApiError && error.status === 401 ? "Wrong email or password." : error.message;
      clear(message, notice("error", text));
      submit.disabled = false;
      password.select();
    }
  } }, h("h1", null, "Sign in to Ledger"), field("Email", email), field("Password", password), submit, message);
  clear(main, form);
  email.focus();
}

export function notFoundPage(main, text) {
  document.title = "Not found · Ledger";
  clear(main, h("section", { class: "not-found", "data-not-found": "" },
    h("h1", null, "404 — not found"),
    h("p", null, text || "There is no such page, or the project is not one of yours."),
    h("p", null, h("a", { href: "/" }, "Go to your projects"))));
}

export function helpDialog(keys) {
  let dialog = document.getElementById("help");
  if (!dialog) {
    dialog = h("dialog", { id: "help", "aria-label": "Keyboard" },
      h("h2", null, "Keyboard"),
      h("dl", { class: "pairs" }, keys.map(([key, what]) => [h("dt", null, h("kbd", null, key)), h("dd", null, what)])),
      h("form", { method: "dialog" }, h("button", { type: "submit" }, "Close")));
    document.body.append(dialog);
  }
  dialog.showModal();
}

// Bars of series over time: one <rect> per bucket and series, stacked.
function chart(points, series, { label }) {
  const width = 720, height = 160, pad = 24;
  const totals = points.map((p) => series.reduce((sum, [name]) => sum + (p[name] || 0), 0));
  const max = Math.max(1, ...totals);
  const step = (width - pad) / Math.max(1, points.length);
  const bars = [];
  points.forEach((point, i) => {
    let y = height - pad;
    for (const [name, css] of series) {
      const tall = ((point[name] || 0) / max) * (height - pad - 4);
      if (!tall) continue;
      y -= tall;
      bars.push(s("rect", { x: (pad + i * step).toFixed(1), y: y.toFixed(1), width: Math.max(1, step - 1).toFixed(1), height: tall.toFixed(1), class: css },
        s("title", null, `${point.timestamp}: ${name} ${point[name]}`)));
    }
  });
  return h("figure", { class: "chart" },
    s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label },
      s("text", { x: 0, y: 12, class: "axis" }, String(max)),
      s("line", { x1: pad, x2: width, y1: height - pad, y2: height - pad, class: "axis" }), bars),
    h("figcaption", null, label, " ", series.map(([name, css]) => h("span", { class: `key ${css}` }, name))));
}

function rows(answer) {
  if (Array.isArray(answer)) return answer;
  for (const name of ["buckets", "points", "data", "items", "series"]) if (Array.isArray(answer?.[name])) return answer[name];
  return [];
}

export async function overviewPage(main, { project, stale }) {
  const params = { project_id: project.id };
  let rate, volume;
  try {
    [rate, volume] = await Promise.all([
      api("/api/v1/metrics/error-rate", { params }),
      api("/api/v1/metrics/log-volume", { params }),
    ]);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) throw error;
    if (stale()) return;
    clear(main, h("h1", null, "Overview"),
      notice("info", "The error-rate and volume charts are not available: this server has no analytics metrics yet (",
        h("code", null, "/api/v1/metrics/error-rate"), " answered 404). Live errors, error groups and log search work without them."));
    return;
  }
  if (stale()) return;
  clear(main, h("h1", null, "Overview"),
    chart(rows(rate), [["critical_count", "c-critical"], ["error_count", "c-error"]], { label: "Errors per 5 minutes, last 24 h" }),
    chart(rows(volume), [["critical", "c-critical"], ["error", "c-error"], ["warning", "c-warning"], ["info", "c-info"], ["debug", "c-debug"]],
      { label: "Logs per hour, last 7 days" }));
}
