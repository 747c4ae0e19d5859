// Error groups: the list (status filter, sort, a 24 h sparkline per group) and a group's page
// (latest event's stack trace, attributes, why grouped, releases and environments, triage).

import { ApiError, api } from "./api.js";
import { clear, field, h, hourly, level, notice, select, sparkline, time, when } from "./dom.js";

const STATUSES = [["unresolved", "Unresolved"], ["resolved", "Resolved"], ["ignored", "Ignored"], ["", "Any status"]];
const SORTS = [["last_seen", "Last seen"], ["count", "Most events"], ["first_seen", "Newest"]];
const PAGE = 50;
const SPARK_SAMPLE = 1000;

// Hourly counts per fingerprint over 24 h, from the newest error events of the project
// (bounded: one request of at most SPARK_SAMPLE events).
async function sparkData(project) {
  const since = new Date(Date.now() - 24 * 3_600_000).toISOString();
  const page = await api("/api/v1/errors/list", { params: { project_id: project.id, periodFrom: since, limit: SPARK_SAMPLE } });
  const byPrint = new Map();
  for (const log of page.logs) {
    if (!log.error_fingerprint) continue;
    if (!byPrint.has(log.error_fingerprint)) byPrint.set(log.error_fingerprint, []);
    byPrint.get(log.error_fingerprint).push(log.timestamp);
  }
  return { byPrint, partial: page.has_more };
}

// The title usually starts with the error type already ("KeyError: 'sku'"); never say it twice.
function heading(group) {
  const type = group.error_type || group.log_type;
  if (group.title.startsWith(type)) return [h("strong", null, type), group.title.slice(type.length)];
  return [h("strong", null, type), ": ", group.title];
}

function statusBadge(status) { return h("span", { class: `status status-${status}` }, status); }

export async function errorsPage(main, { project, params, navigate, stale }) {
  const status = params.has("status") ? params.get("status") : "unresolved";
  const sort = params.get("sort") || "last_seen";
  const search = params.get("search") || "";
  const offset = Math.max(0, parseInt(params.get("offset") || "0", 10) || 0);
  const [page, spark] = await Promise.all([
    api("/api/v1/error-groups", { params: { project_id: project.id, status, sort, search, limit: PAGE, offset } }),
    sparkData(project),
  ]);
  if (stale()) return;
  const apply = (changes) => {
    const next = new URLSearchParams({ status, sort, search, ...changes });
    if (!next.get("search")) next.delete("search");
    navigate(`/p/${project.slug}/errors?${next}`);
  };
  const statusSelect = select("status", STATUSES, status);
  const sortSelect = select("sort", SORTS, sort);
  const searchInput = h("input", { type: "search", name: "search", value: search, placeholder: "Title or type  ( / )", "data-filter": "" });
  const form = h("form", { class: "filters", role: "search", onsubmit: (e) => { e.preventDefault(); apply({ search: searchInput.value.trim() }); } },
    field("Status", statusSelect), field("Sort", sortSelect), field("Search", searchInput),
    h("button", { type: "submit" }, "Apply"));
  statusSelect.addEventListener("change", () => apply({ status: statusSelect.value }));
  sortSelect.addEventListener("change", () => apply({ sort: sortSelect.value }));

  const rows = page.error_groups.map((group) => h("li", null,
    h("a", { href: `/p/${project.slug}/errors/${group.id}`, class: "group", "data-row": "", "data-error": "1" },
      h("span", { class: "title" }, level(group.level), " ", heading(group)),
      sparkline(hourly(spark.byPrint.get(group.fingerprint) || []), { label: `events per hour, last 24 h` }),
      h("span", { class: "count" }, group.event_count.toLocaleString()),
      h("span", { class: "seen" }, time(group.last_seen)),
      statusBadge(group.status))));
  const more = [];
  if (offset > 0) more.push(h("a", { href: `/p/${project.slug}/errors?${new URLSearchParams({ status, sort, search, offset: Math.max(0, offset - PAGE) })}`, class: "button" }, "← Previous"));
  if (page.has_more) more.push(h("a", { href: `/p/${project.slug}/errors?${new URLSearchParams({ status, sort, search, offset: offset + PAGE })}`, class: "button" }, "Next →"));
  clear(main,
    h("div", { class: "bar" }, h("h1", null, "Error groups"), h("span", { class: "muted" }, `${page.total.toLocaleString()} groups`)),
    form,
    spark.partial ? h("p", { class: "muted small" }, `Sparklines count the newest ${SPARK_SAMPLE} error events of the last 24 h.`) : null,
    rows.length ? h("ol", { class: "groups", "aria-label": "Error groups" },
      h("li", { class: "head", "aria-hidden": "true" }, h("span", null, "Group"), h("span", null, "24 h"), h("span", null, "Events"), h("span", null, "Last seen"), h("span", null, "Status")),
      rows) : h("p", { class: "muted empty" }, "No error group matches."),
    h("div", { class: "pager" }, more));
}

// Frames of third-party and standard-library code, as the fingerprint treats them (DESIGN §6).
const NOT_IN_APP = /site-packages|dist-packages|\/lib\/python\d|<frozen |node_modules|node:internal|\(node:|\/gems\/|\/ruby\/\d|\bat (java|javax|jdk|sun|kotlin|scala)\.|\/usr\/local\/go\/|\/go\/pkg\/mod\/|GOROOT/;
const FRAME = /^\s*(File "|at |from |[\w./-]+\.(go|rb):\d+)|^\S+\.go:\d+|^\s+\S+\.(rb|go):\d+/;

export function stackTrace(text) {
  if (!text) return h("p", { class: "muted" }, "This event has no stack trace.");
  let previousInApp = false;
  const lines = text.split("\n").map((line) => {
    const frame = FRAME.test(line);
    const inApp = frame && !NOT_IN_APP.test(line);
    // Python prints the frame's source line under it: it belongs to the same frame.
    const source = !frame && previousInApp && /^\s{3,}\S/.test(line);
    previousInApp = inApp;
    const css = frame ? (inApp ? "line frame in-app" : "line frame") : source ? "line source in-app" : "line";
    return h("span", { class: css }, line, "\n");
  });
  return h("pre", { class: "trace", tabindex: "0", "aria-label": "Stack trace; in-app frames are highlighted" }, lines);
}

export function attributes(attrs) {
  const entries = Object.entries(attrs || {});
  if (!entries.length) return h("p", { class: "muted" }, "No attributes.");
  return h("dl", { class: "pairs" }, entries.map(([name, value]) => [h("dt", null, name),
    h("dd", null, typeof value === "string" ? value : JSON.stringify(value))]));
}

// One grouping component as text. An exception of the chain is a signature object: its type
// and the frames it was grouped by (or its message, when the frames were minified).
function componentText(value) {
  if (Array.isArray(value)) {
    const chain = value.some((v) => v && typeof v === "object");
    return value.map(componentText).join(chain ? "; " : " → ");
  }
  if (value && typeof value === "object") {
    const type = value.type || "exception";
    if (Array.isArray(value.frames)) return value.frames.length ? `${type} at ${value.frames.join(" → ")}` : type;
    if (value.minified) return `${type}: ${value.message ?? ""} (minified frames)`;
    return JSON.stringify(value);
  }
  return String(value);
}

function components(group) {
  const parts = Object.entries(group.components || {}).filter(([name]) => name !== "method");
  return h("div", null,
    h("p", null, group.why_grouped),
    h("dl", { class: "pairs" }, h("dt", null, "method"), h("dd", null, String(group.components?.method ?? "")),
      parts.map(([name, value]) => [h("dt", null, name), h("dd", null, componentText(value))]),
      h("dt", null, "fingerprint"), h("dd", null, h("code", null, group.fingerprint), ` (v${group.fingerprint_version})`)));
}

function tally(logs, name) {
  const counts = new Map();
  for (const log of logs) { const value = log[name] || "(none)"; counts.set(value, (counts.get(value) || 0) + 1); }
  return h("ul", { class: "tags" }, [...counts].sort((a, b) => b[1] - a[1]).map(([value, n]) => h("li", null, value, h("span", { class: "muted" }, ` ${n}`))));
}

function triage(group, onChange) {
  const release = h("input", { type: "text", name: "resolved_in_release", value: group.resolved_in_release || group.last_release || "", placeholder: "release (optional)", "aria-label": "Resolved in release", maxlength: "100" });
  const message = h("p", { class: "small", role: "status" });
  const send = async (status) => {
    const body = { status };
    if (status === "resolved" && release.value.trim()) body.resolved_in_release = release.value.trim();
    try {
      const updated = await api(`/api/v1/error-groups/${group.id}/status`, { method: "PATCH", body });
      onChange(updated);
    } catch (error) { clear(message, notice("error", error.message)); }
  };
  const buttons = [];
  if (group.status !== "resolved") buttons.push(h("button", { type: "button", "data-action": "resolve", onclick: () => send("resolved") }, "Resolve"));
  if (group.status !== "ignored") buttons.push(h("button", { type: "button", "data-action": "ignore", class: "quiet", onclick: () => send("ignored") }, "Ignore"));
  if (group.status !== "unresolved") buttons.push(h("button", { type: "button", "data-action": "reopen", class: "quiet", onclick: () => send("unresolved") }, "Reopen"));
  return h("div", { class: "triage" }, group.status !== "resolved" ? release : null, buttons, message);
}

export async function groupPage(main, { project, id, stale }) {
  const group = await api(`/api/v1/error-groups/${id}`);
  if (group.project_id !== project.id) throw new ApiError(404, "not found");
  const events = await api("/api/v1/logs", { params: { project_id: project.id, error_fingerprint: group.fingerprint, limit: 200 } });
  if (stale()) return;
  const latest = events.logs[0] || group.sample_log;
  const draw = (current) => {
    document.title = `${current.title} · Ledger`;
    clear(main,
      h("p", { class: "crumbs" }, h("a", { href: `/p/${project.slug}/errors` }, "Error groups"), " / "),
      h("div", { class: "bar" }, h("h1", { class: "group-title" }, level(current.level), " ", heading(current)), statusBadge(current.status)),
      h("div", { class: "facts" },
        h("span", null, h("strong", null, current.event_count.toLocaleString()), " events"),
        h("span", null, "first seen ", time(current.first_seen)),
        h("span", null, "last seen ", time(current.last_seen)),
        current.resolved_in_release ? h("span", null, "resolved in ", h("code", null, current.resolved_in_release)) : null,
        sparkline(hourly(events.logs.map((l) => l.timestamp)), { width: 192, height: 28, label: "events per hour, last 24 h" })),
      triage(current, draw),
      h("section", null, h("h2", null, "Latest event"),
        latest ? h("p", { class: "small muted" }, time(latest.timestamp, when(latest.timestamp)), " · ", latest.environment || "no environment", " · ", latest.release || "no release", " · ",
          h("a", { href: `/p/${project.slug}/logs/${latest.id}` }, "open the event")) : null,
        latest ? h("p", { class: "msg" }, latest.error_message || latest.message || "") : null,
        stackTrace(latest?.stack_trace)),
      h("section", { class: "columns" },
        h("div", null, h("h2", null, "Attributes"), attributes(latest?.attributes)),
        h("div", null, h("h2", null, "Why grouped"), components(current))),
      h("section", { class: "columns" },
        h("div", null, h("h2", null, "Releases"), tally(events.logs, "release")),
        h("div", null, h("h2", null, "Environments"), tally(events.logs, "environment"))),
      h("p", { class: "small muted" }, events.has_more ? `Releases, environments and the sparkline are from the newest ${events.logs.length} events. ` : "",
        h("a", { href: `/p/${project.slug}/logs?error_fingerprint=${encodeURIComponent(current.fingerprint)}` }, "All events of this group")));
  };
  draw(group);
}
