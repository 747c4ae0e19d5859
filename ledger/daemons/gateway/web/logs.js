// Log search with the filters of GET /logs and keyset paging (the cursor is in the URL, so a
// page of results can be shared), and one log's detail.

import { api } from "./api.js";
import { clear, field, h, level, select, time, when } from "./dom.js";
import { attributes, stackTrace } from "./groups.js";

const PERIODS = [["", "Retention"], ["last1h", "Last hour"], ["last24h", "Last 24 h"], ["today", "Today"], ["last7days", "Last 7 days"],
  ["last30days", "Last 30 days"], ["currentWeek", "This week"], ["currentMonth", "This month"], ["currentYear", "This year"]];
const LEVELS = [["", "Any level"], ["debug", "debug"], ["info", "info"], ["warning", "warning"], ["error", "error"], ["critical", "critical"], ["error,critical", "error + critical"]];
const TYPES = [["", "Any type"], ["console", "console"], ["logger", "logger"], ["exception", "exception"], ["network", "network"], ["database", "database"], ["endpoint", "endpoint"], ["custom", "custom"]];
const FILTERS = ["period", "periodFrom", "periodTo", "level", "log_type", "environment", "release", "error_fingerprint", "search"];
const PAGE = 50;

function localInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

export async function logsPage(main, { project, params, navigate, stale }) {
  const filters = Object.fromEntries(FILTERS.map((name) => [name, params.get(name) || ""]));
  const cursor = params.get("cursor") || "";
  const back = params.getAll("back");
  const page = await api("/api/v1/logs", { params: { project_id: project.id, ...filters, cursor, limit: PAGE } });
  if (stale()) return;

  const controls = {
    period: select("period", PERIODS, filters.period),
    periodFrom: h("input", { type: "datetime-local", name: "periodFrom", value: localInput(filters.periodFrom) }),
    periodTo: h("input", { type: "datetime-local", name: "periodTo", value: localInput(filters.periodTo) }),
    level: select("level", LEVELS, filters.level),
    log_type: select("log_type", TYPES, filters.log_type),
    environment: h("input", { type: "text", name: "environment", value: filters.environment, placeholder: "production,staging" }),
    release: h("input", { type: "text", name: "release", value: filters.release }),
    search: h("input", { type: "search", name: "search", value: filters.search, placeholder: "Text in the message or error  ( / )", "data-filter": "" }),
  };
  const link = (extra) => {
    const next = new URLSearchParams();
    for (const [name, value] of Object.entries({ ...filters, ...extra })) {
      if (Array.isArray(value)) value.forEach((v) => next.append(name, v));
      else if (value) next.set(name, value);
    }
    return `/p/${project.slug}/logs${next.size ? `?${next}` : ""}`;
  };
  const form = h("form", { class: "filters", role: "search", onsubmit: (e) => {
    e.preventDefault();
    const chosen = {};
    for (const [name, control] of Object.entries(controls)) {
      const value = control.value.trim();
      chosen[name] = name.startsWith("period") && control.type === "datetime-local" && value ? new Date(value).toISOString() : value;
    }
    if (chosen.periodFrom || chosen.periodTo) chosen.period = "";
    navigate(link({ ...chosen, cursor: "", back: [] }));
  } },
  field("Search", controls.search), field("Period", controls.period), field("From", controls.periodFrom), field("To", controls.periodTo),
  field("Level", controls.level), field("Type", controls.log_type), field("Environment", controls.environment), field("Release", controls.release),
  filters.error_fingerprint ? h("span", { class: "chip" }, "group ", h("code", null, filters.error_fingerprint.slice(0, 12)), " ", h("a", { href: link({ error_fingerprint: "" }) }, "×")) : null,
  h("button", { type: "submit" }, "Search"));

  const rows = page.logs.map((log) => h("li", null, h("a", {
    href: `/p/${project.slug}/logs/${log.id}`, class: "log", "data-row": "",
    "data-error": log.level === "error" || log.level === "critical" ? "1" : "0" },
  time(log.timestamp, when(log.timestamp)), level(log.level), h("span", { class: "etype" }, log.log_type),
  h("span", { class: "msg" }, log.message || log.error_message || ""))));
  const pager = [];
  if (cursor) pager.push(h("a", { class: "button", href: link({ cursor: back.at(-1) || "", back: back.slice(0, -1) }) }, "← Newer"));
  if (page.has_more && page.next_cursor) pager.push(h("a", { class: "button", href: link({ cursor: page.next_cursor, back: [...back, cursor] }) }, "Older →"));
  clear(main,
    h("div", { class: "bar" }, h("h1", null, "Logs"), h("span", { class: "muted" }, `${page.total.toLocaleString()}${page.total_exact ? "" : "+"} matching`)),
    form,
    rows.length ? h("ol", { class: "logs", "aria-label": "Logs, newest first" }, rows) : h("p", { class: "muted empty" }, "No log matches these filters."),
    h("div", { class: "pager" }, pager));
}

const FIELDS = ["timestamp", "ingested_at", "level", "log_type", "importance", "environment", "release", "error_type", "error_fingerprint",
  "trace_id", "span_id", "sdk_version", "platform", "platform_version", "id"];

export async function logPage(main, { project, id, stale }) {
  const log = await api(`/api/v1/logs/${id}`);
  if (stale()) return;
  clear(main,
    h("p", { class: "crumbs" }, h("a", { href: `/p/${project.slug}/logs` }, "Logs"), " / "),
    h("div", { class: "bar" }, h("h1", null, level(log.level), " ", log.error_type || log.log_type)),
    h("p", { class: "msg" }, log.message || ""),
    log.error_message && log.error_message !== log.message ? h("p", { class: "msg" }, log.error_message) : null,
    h("dl", { class: "pairs" }, FIELDS.filter((name) => log[name]).map((name) => [h("dt", null, name),
      h("dd", null, name === "error_fingerprint"
        ? h("a", { href: `/p/${project.slug}/logs?error_fingerprint=${encodeURIComponent(log[name])}` }, log[name])
        : name.endsWith("_at") || name === "timestamp" ? when(log[name]) : String(log[name]))])),
    log.stack_trace ? h("section", null, h("h2", null, "Stack trace"), stackTrace(log.stack_trace)) : null,
    h("section", null, h("h2", null, "Attributes"), attributes(log.attributes)));
}
