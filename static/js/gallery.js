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
