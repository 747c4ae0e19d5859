// The TUI's keyboard habits: `/` filter, `j`/`k` move between rows, `e` next error,
// Enter opens, Esc leaves a field, `?` lists them. Rows are any `[data-row]` in <main>.

const HELP = [["/", "filter or search"], ["j / k", "next / previous row"], ["e", "next error"],
  ["Enter", "open the row"], ["Esc", "leave a field"], ["p", "pause live errors"], ["?", "this help"]];

export const keyHelp = HELP;

function typing(target) {
  return target instanceof HTMLElement &&
    (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

function rows() { return [...document.querySelectorAll("main [data-row]")]; }

function move(step, predicate = () => true) {
  const all = rows();
  const n = all.length;
  if (!n) return;
  let at = all.indexOf(document.activeElement);
  if (at === -1) at = step > 0 ? -1 : n; // from no row: j starts at the top, k at the bottom
  for (let i = 1; i <= n; i++) {
    const next = all[(((at + step * i) % n) + n) % n];
    if (predicate(next)) { next.focus(); next.scrollIntoView({ block: "nearest" }); return; }
  }
}

export function installKeys({ onHelp }) {
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(event.target)) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    const main = document.getElementById("main");
    switch (event.key) {
      case "/": {
        const filter = main.querySelector("[data-filter]");
        if (filter) { event.preventDefault(); filter.focus(); filter.select?.(); }
        break;
      }
      case "j": move(1); break;
      case "k": move(-1); break;
      case "e": move(1, (row) => row.dataset.error === "1"); break;
      case "p": main.querySelector("[data-pause]")?.click(); break;
      case "?": onHelp(HELP); break;
      default: return;
    }
  });
}
