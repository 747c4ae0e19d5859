// Live errors over GET /api/v1/notifications/stream.
//
// EventSource cannot send headers, so each connection first trades the access token for a
// stream ticket (POST /api/v1/live/tickets: one project, one stream, valid 60 s) and puts only
// that in the URL. The browser's own retry would reuse a spent ticket, so every error closes
// the EventSource and this module reconnects itself: a new ticket, and `last_event_id` set to
// the last event received, so the gateway replays what was missed. `skipped` events (the
// gateway could not keep up, or the replay window was passed) are shown, never hidden.

import { api, SignedOut } from "./api.js";
import { clear, clock, h, level, notice, time, uuidv7Millis } from "./dom.js";

const MAX_ROWS = 500;
const BACKOFF_MS = [250, 500, 1000, 2000, 4000, 8000];

export class LiveStream {
  constructor(projectId, { onEvent, onState, onSkipped, onSignedOut }) {
    Object.assign(this, { projectId, onEvent, onState, onSkipped, onSignedOut });
    this.lastId = null;
    this.failures = 0;
    this.closed = false;
    this.source = null;
    this.timer = null;
    this.quietLimit = 45_000;
  }

  async open() {
    if (this.closed) return;
    this.onState(this.failures ? "reconnecting" : "connecting");
    let ticket;
    try {
      ticket = await api("/api/v1/live/tickets", { method: "POST", body: { project_id: this.projectId } });
    } catch (error) {
      if (error instanceof SignedOut) { this.close(); this.onSignedOut(); return; }
      this.retry();
      return;
    }
    if (this.closed) return;
    const query = new URLSearchParams({ ticket: ticket.ticket });
    if (this.lastId) query.set("last_event_id", this.lastId);
    const source = new EventSource(`/api/v1/notifications/stream?${query}`);
    this.source = source;
    source.addEventListener("connected", (e) => {
      const hello = JSON.parse(e.data);
      this.failures = 0;
      // The id of `connected` is where the stream starts; keep an older one while resuming,
      // until the replayed events move it on.
      if (!this.lastId) this.lastId = e.lastEventId;
      this.quietLimit = (hello.heartbeat_seconds || 15) * 3000;
      if (!performance.getEntriesByName("ledger:live").length) performance.mark("ledger:live");
      this.onState("live", hello);
      this.watch();
    });
    source.addEventListener("error_notification", (e) => {
      this.lastId = e.lastEventId || this.lastId;
      this.watch();
      this.onEvent(JSON.parse(e.data));
    });
    source.addEventListener("skipped", (e) => { this.watch(); this.onSkipped(JSON.parse(e.data)); });
    source.addEventListener("heartbeat", () => this.watch());
    source.onerror = () => { if (this.source === source) this.retry(); };
  }

  // A stream that goes quiet past three heartbeats is dead even if the socket is not.
  watch() {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => this.retry(), this.quietLimit);
  }

  retry() {
    this.source?.close();
    this.source = null;
    clearTimeout(this.watchdog);
    if (this.closed) return;
    const wait = BACKOFF_MS[Math.min(this.failures, BACKOFF_MS.length - 1)];
    this.failures += 1;
    this.onState("reconnecting", { wait });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), wait * (0.8 + Math.random() * 0.4));
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.watchdog);
    this.source?.close();
  }
}

const STATES = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", paused: "Paused" };

function row(project, log, count, groupId) {
  const href = groupId ? `/p/${project.slug}/errors/${groupId}` : `/p/${project.slug}/logs/${log.id}`;
  const error = log.level === "error" || log.level === "critical";
  return h("li", null, h("a", { href, class: "event", "data-row": "", "data-error": error ? "1" : "0", "data-id": log.id },
    level(log.level),
    h("span", { class: "etype" }, log.error_type || log.log_type),
    h("span", { class: "msg" }, log.error_message || log.message || ""),
    h("span", { class: "count", title: "events of this fingerprint" }, `×${count}`),
    time(log.timestamp, clock(log.timestamp))));
}

export async function livePage(main, { project, stale }) {
  const counts = new Map();
  const groups = new Map();
  const seen = new Set();
  const held = [];
  let paused = false;

  const status = h("span", { class: "pill", role: "status", "aria-live": "polite" }, STATES.connecting);
  const pause = h("button", { type: "button", "data-pause": "", "aria-pressed": "false" }, "Pause");
  const notices = h("div", { class: "notices" });
  const list = h("ol", { class: "events", "aria-label": "Live errors, newest first" });
  const empty = h("p", { class: "muted empty" }, "No errors yet. New ones appear here the moment they are ingested.");
  clear(main, h("div", { class: "bar" }, h("h1", null, "Live errors"), status, pause), notices, empty, list);

  function show(log, { fresh }) {
    if (seen.has(log.id)) return;
    seen.add(log.id);
    const fp = log.error_fingerprint;
    if (fresh && fp) counts.set(fp, (counts.get(fp) || 0) + 1);
    const item = row(project, log, counts.get(fp) || 1, groups.get(fp));
    if (fresh) list.prepend(item); else list.append(item);
    while (list.children.length > MAX_ROWS) list.lastElementChild.remove();
    empty.hidden = true;
    if (fresh) {
      const ingested = uuidv7Millis(log.id);
      requestAnimationFrame(() => performance.mark("ledger:rendered", { detail: { id: log.id, ingested } }));
    }
  }

  // What happened before the page opened: the groups (for counts and links) and recent errors.
  const [page, recent] = await Promise.all([
    api("/api/v1/error-groups", { params: { project_id: project.id, limit: 200 } }),
    api("/api/v1/errors/list", { params: { project_id: project.id, limit: 30 } }),
  ]);
  if (stale()) return null;
  for (const group of page.error_groups) { counts.set(group.fingerprint, group.event_count); groups.set(group.fingerprint, group.id); }
  for (const log of recent.logs) show(log, { fresh: false });

  const stream = new LiveStream(project.id, {
    onEvent(log) {
      if (paused) { held.push(log); pause.textContent = `Resume (${held.length} new)`; return; }
      show(log, { fresh: true });
    },
    onState(state, info) {
      status.textContent = paused && state === "live" ? STATES.paused : STATES[state];
      status.dataset.state = state;
      if (state === "reconnecting" && info) status.title = `retrying in ${Math.round(info.wait / 100) / 10} s`;
    },
    onSkipped(info) {
      const text = info.message || `${info.count ?? "some"} events skipped`;
      notices.prepend(notice("warn", text[0].toUpperCase() + text.slice(1), ". ",
        h("a", { href: `/p/${project.slug}/errors` }, "See the error groups")));
    },
    onSignedOut() { location.assign("/signin"); },
  });
  pause.addEventListener("click", () => {
    paused = !paused;
    pause.setAttribute("aria-pressed", String(paused));
    pause.textContent = paused ? "Resume" : "Pause";
    status.textContent = paused ? STATES.paused : STATES[status.dataset.state || "live"];
    if (!paused) { for (const log of held.splice(0)) show(log, { fresh: true }); }
  });
  stream.open();
  return () => stream.close();
}
