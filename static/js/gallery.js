// Galleries: a filter form sends only the filters in use, so a shared URL stays readable.
// Without this file the form sends every field, empty ones included; both work the same.
"use strict";

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!form.matches("form.filters")) return;
  for (const field of form.elements) {
    if (field.name && field.value === "" && !field.disabled) {
      field.disabled = true;
      field.dataset.emptied = "1";
    }
  }
});

// Coming back through the history cache: give the emptied fields back.
window.addEventListener("pageshow", () => {
  for (const field of document.querySelectorAll("form.filters [data-emptied]")) {
    field.disabled = false;
    delete field.dataset.emptied;
  }
});

// Filters apply as they change (the Apply button is for browsers without this file); the
// search box applies when it is left or Enter is pressed, not at every keystroke.
document.addEventListener("change", (event) => {
  const form = event.target.form;
  if (!form?.matches("form.filters[data-auto-apply]") || event.target.type === "search") return;
  if (event.target.name === "q") return;
  form.requestSubmit();
});
for (const form of document.querySelectorAll("form.filters[data-auto-apply]")) {
  const apply = form.querySelector("[data-apply]");
  if (apply) apply.hidden = true;
}

// On a phone the filters fold into one "Filters" control, open only while some are in use.
const fold = document.querySelector("details.filters-fold");
if (fold && window.matchMedia("(max-width: 700px)").matches && !fold.querySelector(".filter-actions a")) {
  fold.open = false;
}

// The viewer: arrow keys and swipes step through the list, Escape closes. Each step is a
// plain link, so the URL in the address bar is always the clip on screen.
const viewer = document.getElementById("viewer");
if (viewer) {
  const go = (which) => {
    const link = viewer.querySelector(`[data-viewer="${which}"]`);
    if (link) window.location.assign(link.href);
  };
  document.addEventListener("keydown", (e) => {
    if (e.altKey || e.ctrlKey || e.metaKey || e.target.matches?.("input, textarea, select")) return;
    if (e.key === "ArrowLeft") go("prev");
    else if (e.key === "ArrowRight") go("next");
    else if (e.key === "Escape") go("close");
    else return;
    e.preventDefault();
  });
  let start = null;
  viewer.addEventListener("touchstart", (e) => {
    start = e.touches.length === 1 ? { x: e.touches[0].clientX, y: e.touches[0].clientY } : null;
  }, { passive: true });
  viewer.addEventListener("touchend", (e) => {
    if (!start) return;
    const dx = e.changedTouches[0].clientX - start.x;
    const dy = e.changedTouches[0].clientY - start.y;
    start = null;
    if (Math.abs(dx) > 60 && Math.abs(dx) > 2 * Math.abs(dy)) go(dx < 0 ? "next" : "prev");
  });
}

// Several clips at once: the cards' tick boxes belong to the bulk form. The bar shows only
// while clips are ticked, with their count; shift-click ticks (or unticks) the range from
// the last box clicked; each action asks once for the whole selection.
const bulk = document.querySelector("form[data-bulk]");
if (bulk) {
  const picks = () => [...document.querySelectorAll('input.pick[form="bulk-form"]')];
  const ticked = () => picks().filter((box) => box.checked);
  const count = bulk.querySelector("[data-bulk-count]");
  const clear = bulk.querySelector("[data-bulk-clear]");
  const plural = (n) => `${n} clip${n === 1 ? "" : "s"}`;
  bulk.classList.add("bulk-live");
  bulk.querySelector("[data-bulk-then]").hidden = true;
  clear.hidden = false;
  const update = () => {
    const n = ticked().length;
    bulk.hidden = n === 0;
    count.textContent = `${n} selected`;
    for (const box of picks()) box.closest("article")?.classList.toggle("picked", box.checked);
  };
  let last = null;
  document.addEventListener("click", (e) => {
    const box = e.target.closest?.("input.pick");
    if (!box) return;
    if (e.shiftKey && last && last !== box && last.isConnected) {
      const all = picks();
      const [a, b] = [all.indexOf(last), all.indexOf(box)].sort((x, y) => x - y);
      for (const other of all.slice(a, b + 1)) other.checked = box.checked;
    }
    last = box;
    update();
  });
  document.addEventListener("change", (e) => {
    if (e.target.matches?.("input.pick")) update();
  });
  clear.addEventListener("click", () => {
    for (const box of ticked()) box.checked = false;
    last = null;
    update();
  });
  const questions = {
    zip: (n) => `Download ${plural(n)} as one zip?`,
    delete: (n) => `Delete ${plural(n)} and their stored files? This cannot be undone.`,
    private: (n) => `Make ${plural(n)} private? They leave the team gallery.`,
    team: (n) => `Share ${plural(n)} with the team?`,
  };
  bulk.addEventListener("submit", (e) => {
    const action = e.submitter?.value;
    const n = ticked().length;
    if (!n || !questions[action] || !window.confirm(questions[action](n))) {
      e.preventDefault();
      return;
    }
    let yes = bulk.querySelector('input[name="confirm"]');
    if (!yes) {
      yes = Object.assign(document.createElement("input"), { type: "hidden", name: "confirm", value: "yes" });
      bulk.append(yes);
    }
  });
  // Back through the history cache, the boxes may come back ticked.
  window.addEventListener("pageshow", update);
  // A card that polls is swapped for a fresh one: it stays ticked.
  let keep = new Set();
  document.body.addEventListener("htmx:beforeSwap", () => {
    keep = new Set(ticked().map((box) => box.value));
  });
  document.body.addEventListener("htmx:afterSettle", () => {
    for (const box of picks()) if (keep.has(box.value)) box.checked = true;
    update();
  });
  update();
}
