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
  if (!all.length) return;
  const at = all.indexOf(document.activeElement);
  for (let i = 1; i <= all.length; i++) {
    const next = all[(at + step * i + all.length * i) % all.length];
    if (at === -1 && step < 0 && i === 1) { /* from nowhere, k starts at the bottom */ }
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
