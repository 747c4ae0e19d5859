// The shell: sign-in gate, the project switcher, path routing (every page has its own URL;
// the gateway answers the same page for all of them) and the keyboard.

import { account, ApiError, api, SignedOut, signOut } from "./api.js";
import { clear, h } from "./dom.js";
import { errorsPage, groupPage } from "./groups.js";
import { installKeys } from "./keys.js";
import { livePage } from "./live.js";
import { logPage, logsPage } from "./logs.js";
import { helpDialog, notFoundPage, overviewPage, signInPage } from "./pages.js";

const main = document.getElementById("main");
const top = document.getElementById("top");
const SECTIONS = [["live", "Live"], ["errors", "Errors"], ["logs", "Logs"], ["overview", "Overview"]];
const ROUTES = [
  [/^\/p\/([a-z0-9-]+)\/live$/, livePage, "live"],
  [/^\/p\/([a-z0-9-]+)\/errors$/, errorsPage, "errors"],
  [/^\/p\/([a-z0-9-]+)\/errors\/([0-9a-f-]{36})$/, groupPage, "errors"],
  [/^\/p\/([a-z0-9-]+)\/logs$/, logsPage, "logs"],
  [/^\/p\/([a-z0-9-]+)\/logs\/([0-9a-f-]{36})$/, logPage, "logs"],
  [/^\/p\/([a-z0-9-]+)\/overview$/, overviewPage, "overview"],
];

let cleanup = null;
let projects = null;
let generation = 0;

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  render();
}

function header(project, section) {
  const me = account();
  if (!me) return clear(top, h("a", { href: "/", class: "brand" }, "Ledger"));
  const switcher = h("select", { "aria-label": "Project", class: "switcher",
    onchange: (e) => navigate(`/p/${e.target.value}/${section || "live"}`) },
  (projects || []).map((p) => h("option", { value: p.slug, selected: project && p.slug === project.slug }, p.name || p.slug)));
  const nav = h("nav", { "aria-label": "Sections" }, project && SECTIONS.map(([name, text]) =>
    h("a", { href: `/p/${project.slug}/${name}`, "aria-current": name === section ? "page" : null }, text)));
  clear(top,
    h("a", { href: project ? `/p/${project.slug}/live` : "/", class: "brand" }, "Ledger"),
    projects && projects.length ? switcher : null,
    nav,
    h("span", { class: "who" }, me.email),
    h("button", { type: "button", class: "quiet", onclick: async () => { await signOut(); projects = null; navigate("/signin"); } }, "Sign out"));
}

async function loadProjects() {
  if (!projects) projects = (await api("/api/v1/projects")).projects;
  return projects;
}

// The first page drawn and usable: what bench/bench_web.py reads as time to interactive.
function markInteractive() {
  if (!performance.getEntriesByName("ledger:interactive").length) performance.mark("ledger:interactive");
}

async function render() {
  const mine = ++generation;
  if (cleanup) { try { cleanup(); } catch { /* a page's own teardown */ } cleanup = null; }
  const path = location.pathname.replace(/\/+$/, "") || "/";
  const params = new URLSearchParams(location.search);
  document.title = "Ledger";
  try {
    if (path === "/signin" || !account()) {
      header(null, null);
      if (path !== "/signin") history.replaceState(null, "", `/signin?next=${encodeURIComponent(location.pathname + location.search)}`);
      signInPage(main, { next: params.get("next"), onSignedIn: (next) => { projects = null; navigate(next || "/", { replace: true }); } });
      markInteractive();
      return;
    }
    const list = await loadProjects();
    if (path === "/") {
      if (!list.length) { header(null, null); notFoundPage(main, "Your account has no project yet: create one with `ledger projects create`."); return; }
      navigate(`/p/${list[0].slug}/live`, { replace: true });
      return;
    }
    for (const [pattern, page, section] of ROUTES) {
      const match = pattern.exec(path);
      if (!match) continue;
      const project = list.find((p) => p.slug === match[1]);
      header(project, project ? section : null);
      if (!project) { notFoundPage(main); return; }
      document.title = `${section[0].toUpperCase()}${section.slice(1)} · ${project.slug} · Ledger`;
      clear(main, h("p", { class: "muted" }, "Loading…"));
      const done = await page(main, { project, params, id: match[2], navigate, stale: () => mine !== generation });
      if (mine !== generation) { if (typeof done === "function") done(); return; }
      cleanup = typeof done === "function" ? done : null;
      markInteractive();
      return;
    }
    header(null, null);
    notFoundPage(main);
  } catch (error) {
    if (error instanceof SignedOut) { projects = null; navigate(`/signin?next=${encodeURIComponent(location.pathname + location.search)}`, { replace: true }); return; }
    if (error instanceof ApiError && error.status === 404) { notFoundPage(main); return; }
    clear(main, h("p", { class: "notice notice-error", role: "alert" }, `Something went wrong: ${error.message}`));
  }
}

// Same-origin links change the page without a reload.
document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href]");
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || link.target) return;
  const target = new URL(link.href, location.href);
  if (target.origin !== location.origin || target.pathname.startsWith("/api/") || link.hasAttribute("download")) return;
  if (target.hash && target.pathname === location.pathname) return;
  event.preventDefault();
  navigate(target.pathname + target.search);
});

window.addEventListener("popstate", render);
installKeys({ onHelp: helpDialog });
render();
