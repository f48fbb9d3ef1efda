// Compare: two to four clips under one play/pause button and one scrubber, kept in step.
// Without this file each clip keeps its own controls.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const videos = [...document.querySelectorAll(".compare-grid video")];
  const controls = document.getElementById("compare-controls");
  if (videos.length < 2 || !controls) return;
  const play = document.getElementById("compare-play");
  const scrub = document.getElementById("compare-scrub");
  const time = document.getElementById("compare-time");
  const [lead] = videos;
  const label = (s) => `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}`;
  const longest = () => Math.max(...videos.map((v) => v.duration || 0)) || 0;

  controls.hidden = false;
  for (const v of videos) v.controls = false;

  function moveAll(at) {
    for (const v of videos) v.currentTime = Math.min(at, v.duration || at);
  }

  function show() {
    const total = longest();
    const at = lead.currentTime;
    scrub.value = total ? String(Math.round((at / total) * 1000)) : "0";
    scrub.setAttribute("aria-valuetext", `${label(at)} of ${label(total)}`);
    time.textContent = label(at);
  }

  play.addEventListener("click", () => {
    if (videos.some((v) => v.paused && !v.ended)) {
      moveAll(lead.ended ? 0 : lead.currentTime);
      for (const v of videos) v.play().catch(() => {});
      play.textContent = "Pause";
    } else {
      for (const v of videos) v.pause();
      play.textContent = "Play";
    }
  });

  scrub.addEventListener("input", () => {
    moveAll((Number(scrub.value) / 1000) * longest());
    show();
  });

  lead.addEventListener("timeupdate", () => {
    // Keep the others within a frame or two of the first clip.
    for (const v of videos.slice(1)) {
      if (!v.paused && !v.ended && Math.abs(v.currentTime - lead.currentTime) > 0.15) {
        v.currentTime = lead.currentTime;
      }
    }
    show();
  });
  for (const v of videos) {
    v.addEventListener("ended", () => {
      if (videos.every((x) => x.ended || x.paused)) play.textContent = "Play";
    });
    v.addEventListener("loadedmetadata", show);
  }
});
