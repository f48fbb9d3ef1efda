// Galleries: the filter bar, "Add to board" in place, the viewer's keys and swipes, and the
// selection. Without this file every part still works, as plain links and forms.
"use strict";

// Filters apply as they change and the search as you type (htmx on the form: gallery.html);
// a request sends only the filters in use, so the address it puts in the bar stays readable.
document.addEventListener("htmx:configRequest", (event) => {
  if (!event.detail.elt.matches?.("form.filters")) return;
  for (const [name, value] of [...event.detail.formData.entries()]) {
    if (value === "") event.detail.formData.delete(name);
  }
});
// The search box has applied already, as it was typed: leaving it sends nothing again.
for (const box of document.querySelectorAll('form.filters input[type="search"]')) {
  box.addEventListener("change", (event) => event.stopPropagation());
}

// "Add to board" in place: htmx loads the picker into the page's dialog, which opens here.
const boardDialog = document.getElementById("board-dialog");
if (boardDialog) {
  document.body.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target?.id === "board-dialog-body" && !boardDialog.open) {
      boardDialog.showModal();
    }
  });
  // A click on the backdrop closes it, as Escape does.
  boardDialog.addEventListener("click", (event) => {
    if (event.target === boardDialog) boardDialog.close();
  });
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
    compare.disabled = n < 2 || n > 4;
    compare.title = compare.disabled ? "Tick two to four clips to compare them" : "";
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
  // Compare takes two to four clips; the zip and Compare change nothing, so neither asks.
  const compare = bulk.querySelector("[data-compare]");
  const questions = {
    delete: (n) => `Delete ${plural(n)} and their stored files? This cannot be undone.`,
    private: (n) => `Make ${plural(n)} private? They leave the team gallery.`,
    team: (n) => `Share ${plural(n)} with the team?`,
  };
  bulk.addEventListener("submit", (e) => {
    const action = e.submitter?.value;
    const n = ticked().length;
    if (n && (action === "zip" || action === "compare")) return;
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
