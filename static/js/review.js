// Team review: the header's inbox count, comments pinned to the player's moment, and
// seeking the player from a pinned comment. Without this file everything still works: the
// count shows on each page load, the moment is typed as m:ss, and a pinned comment's link
// opens the clip file at that moment (#t=).
"use strict";

(() => {
  // ---- Inbox count: htmx asks again every data-poll seconds, only while the page is seen.

  const inboxLink = () => document.getElementById("inbox-link");
  function pollInbox() {
    const link = inboxLink();
    if (link && window.htmx && document.visibilityState === "visible") htmx.trigger(link, "inboxPoll");
  }
  const seconds = Number(inboxLink()?.dataset.poll) || 20;
  setInterval(pollInbox, seconds * 1000);
  // A tab that comes back into view catches up at once instead of waiting for the next tick.
  document.addEventListener("visibilitychange", pollInbox);

  // ---- The clip's player ------------------------------------------------------------

  const player = () => document.querySelector(".detail-media video, video.player-large");
  const label = (s) => `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}`;

  function seek(video, at) {
    const go = () => {
      video.currentTime = Math.min(at, video.duration || at);
    };
    if (video.readyState >= 1) go();
    else video.addEventListener("loadedmetadata", go, { once: true });
  }

  // "at 0:03": the comment form offers the player's current moment.
  function updateMomentButtons() {
    const video = player();
    if (!video) return;
    for (const button of document.querySelectorAll("button[data-moment-for]")) {
      button.hidden = false;
      button.dataset.at = label(video.currentTime);
      button.textContent = `at ${button.dataset.at}`;
      // The accessible name starts with the visible text (WCAG's label in name).
      button.setAttribute("aria-label", `at ${button.dataset.at}: pin to the player's moment`);
    }
  }

  document.addEventListener("click", (e) => {
    const pin = e.target.closest("button[data-moment-for]");
    if (pin) {
      const input = document.getElementById(pin.dataset.momentFor);
      if (input) input.value = pin.dataset.at || "0:00";
      return;
    }
    const link = e.target.closest("a[data-seek]");
    const video = player();
    if (!link || !video || e.ctrlKey || e.metaKey || e.shiftKey) return;
    e.preventDefault();
    video.pause();
    seek(video, Number(link.dataset.seek));
    video.focus();
  });

  function init() {
    const video = player();
    if (!video || video.dataset.reviewReady) return;
    video.dataset.reviewReady = "1";
    video.addEventListener("timeupdate", updateMomentButtons);
    video.addEventListener("seeked", updateMomentButtons);
    // From the inbox: /g/<id>/?t=2#comment-7 opens the clip at that moment.
    const at = Number(new URLSearchParams(location.search).get("t"));
    if (at > 0) seek(video, at);
  }

  document.addEventListener("DOMContentLoaded", () => {
    init();
    updateMomentButtons();
  });
  if (window.htmx) htmx.onLoad(() => updateMomentButtons());
})();
