// Kling Studio: small progressive enhancements. Everything works without this file.
"use strict";

document.addEventListener("htmx:afterSwap", () => {
  // The first card replaces the "nothing yet" line.
  const empty = document.getElementById("no-cards");
  if (empty && document.querySelector("#my-cards .gen")) empty.remove();
});
