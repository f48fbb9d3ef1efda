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

// Tiles: a muted preview while pointed at or focused; the clip itself opens in the viewer.
function preview(tile, on) {
  const video = tile.querySelector("video.tile-preview");
  if (!video) return;
  if (on) {
    if (!video.src) video.src = video.dataset.src;
    tile.classList.add("previewing");
    video.play().catch(() => tile.classList.remove("previewing"));
  } else {
    tile.classList.remove("previewing");
    video.pause();
  }
}
const reduceMotion = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
if (!reduceMotion) {
  document.addEventListener("pointerover", (e) => {
    const tile = e.target.closest?.(".tile-open");
    if (tile && !tile.contains(e.relatedTarget)) preview(tile, true);
  });
  document.addEventListener("pointerout", (e) => {
    const tile = e.target.closest?.(".tile-open");
    if (tile && !tile.contains(e.relatedTarget)) preview(tile, false);
  });
  document.addEventListener("focusin", (e) => {
    if (e.target.matches?.(".tile-open")) preview(e.target, true);
  });
  document.addEventListener("focusout", (e) => {
    if (e.target.matches?.(".tile-open")) preview(e.target, false);
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
