// Kling Studio: small progressive enhancements. Everything works without this file: the
// server enforces the same capability matrix, shows prices on /prices/ and after a failed
// submit, and every action is a plain form or link.
"use strict";

(() => {
  const readJSON = (id) => {
    const el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  };
  const matrix = readJSON("capability-matrix");
  const prices = readJSON("price-table") || {};

  // ---- The prompt form -------------------------------------------------------------

  function checked(form, name) {
    const input = form.querySelector(`input[name="${name}"]:checked:not(:disabled)`);
    return input ? input.value : "";
  }

  // In a batch the prompt box holds one prompt per line: count prompts and the longest.
  const BATCH_MAX = 20;
  function batchLines(form) {
    if (!form?.elements.batch?.checked) return null;
    return form.elements.prompt.value.split("\n").filter((l) => l.trim());
  }

  function updateCounter(textarea) {
    const out = document.getElementById(textarea.dataset.counter);
    if (!out) return;
    const max = Number(out.dataset.max);
    const lines = textarea.name === "prompt" ? batchLines(textarea.form) : null;
    if (lines) {
      const longest = Math.max(0, ...lines.map((l) => l.trim().length));
      out.textContent = `${lines.length} / ${BATCH_MAX} prompts, longest ${longest} / ${max}`;
      out.classList.toggle("near-limit", lines.length > BATCH_MAX || longest > max);
      return;
    }
    const n = textarea.value.length;
    out.textContent = `${n} / ${max}`;
    out.classList.toggle("near-limit", n > max * 0.9);
  }

  // How many jobs one submit makes: variations × prompts (a batch's non-empty lines).
  function jobCount(form) {
    const variations = Number(checked(form, "variations") || 1);
    const lines = batchLines(form);
    return variations * (lines ? Math.max(1, Math.min(BATCH_MAX, lines.length)) : 1);
  }

  // Offer only what the chosen model takes (kling/capabilities.py, via json_script).
  function applyMatrix(form) {
    if (!matrix) return;
    const model = matrix.models[form.elements.model_name.value];
    if (!model) return;

    const modeGroup = form.querySelector("#mode-group");
    const modeRadios = [...form.querySelectorAll('input[name="mode"]')];
    const hasModes = model.modes.length > 0;
    modeGroup.querySelector(".options").hidden = !hasModes;
    form.querySelector("#mode-none").hidden = hasModes;
    for (const r of modeRadios) r.disabled = !model.modes.includes(r.value);
    if (hasModes && !modeRadios.some((r) => r.checked && !r.disabled)) {
      modeRadios.find((r) => !r.disabled).checked = true;
    }

    const durationRadios = [...form.querySelectorAll('input[name="duration"]')];
    for (const r of durationRadios) r.disabled = !model.durations.includes(r.value);
    if (!durationRadios.some((r) => r.checked && !r.disabled)) {
      durationRadios.find((r) => !r.disabled).checked = true;
    }

    const cfgField = form.querySelector("#cfg-field");
    cfgField.hidden = !model.cfg_scale;
    form.elements.cfg_scale.disabled = !model.cfg_scale;

    const mode = checked(form, "mode");
    const duration = checked(form, "duration");
    const rule = matrix.camera;
    const cameraOk =
      form.elements.model_name.value === rule.model_name &&
      mode === rule.mode &&
      duration === rule.duration;
    const camera = form.querySelector("#camera-group");
    camera.disabled = !cameraOk;
    camera.classList.toggle("unavailable", !cameraOk);
    form.querySelector("#camera-simple").hidden = !cameraOk || checked(form, "camera") !== "simple";

    const key = `${form.elements.model_name.value}|${hasModes ? mode : ""}|${duration}`;
    const estimate = form.querySelector("#estimate-value");
    if (estimate) estimate.textContent = prices[key] || "no published price";
    const total = form.querySelector("#estimate-total");
    const usd = readJSON("budget-room")?.prices?.[key];
    const n = jobCount(form);
    if (total) {
      total.hidden = !(n > 1 && usd !== undefined);
      total.textContent = total.hidden ? "" : `× ${n} jobs = $${(Number(usd) * n).toFixed(2)}`;
    }
    updateFit(form, key, n);
  }

  // Budget: the form carries what is left (it is re-rendered after each submit); the note
  // says when one more job of the chosen price would be refused.
  function updateFit(form, key, count = 1) {
    const note = form.querySelector("#estimate-fit");
    const room = form.querySelector("#budget-room");
    if (!note || !room) return;
    const budget = JSON.parse(room.textContent);
    let text = "";
    if (budget.jobs_left === 0) {
      text = "Won't fit: no jobs left today.";
    } else if (budget.jobs_left !== null && budget.jobs_left < count) {
      text = `Won't fit: ${budget.jobs_left} jobs left today.`;
    } else if (budget.usd_left !== null) {
      const price = budget.prices[key];
      if (price === undefined || Number(price) * count > Number(budget.usd_left)) {
        const left = Number(budget.usd_left);
        text = `Won't fit: $${Number.isInteger(left) ? left : left.toFixed(2)} left this month.`;
      }
    }
    note.textContent = text;
    note.hidden = !text;
  }

  function initForm(form) {
    if (form.dataset.enhanced) return;
    form.dataset.enhanced = "1";
    for (const ta of form.querySelectorAll("textarea[data-counter]")) {
      updateCounter(ta);
      ta.addEventListener("input", () => updateCounter(ta));
    }
    const cfg = form.elements.cfg_scale;
    const cfgOut = form.querySelector("#cfg-value");
    if (cfg && cfgOut) {
      const show = () => { cfgOut.textContent = Number(cfg.value).toFixed(2); };
      show();
      cfg.addEventListener("input", show);
    }
    form.addEventListener("change", () => {
      applyMatrix(form);
      updateCounter(form.elements.prompt);
    });
    form.elements.prompt.addEventListener("input", () => applyMatrix(form));
    // Ctrl+Enter (Cmd+Enter on a Mac) submits from anywhere in the form, as in chat apps.
    form.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
    applyMatrix(form);
  }

  // ---- Cards -------------------------------------------------------------------------

  // Running clocks between polls: the server's count plus the time since it arrived.
  const clockStart = new WeakMap();
  function formatClock(s) {
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = String(s % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
  }
  setInterval(() => {
    const now = Date.now();
    for (const el of document.querySelectorAll(".elapsed[data-elapsed]")) {
      if (!clockStart.has(el)) clockStart.set(el, now);
      const s = Number(el.dataset.elapsed) + Math.floor((now - clockStart.get(el)) / 1000);
      el.textContent = formatClock(s);
    }
  }, 1000);

  // Tiles (every list of cards: the studio, the galleries): a muted preview while pointed
  // at or focused; the clip itself opens in the viewer. Nothing loads until then.
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
  if (!window.matchMedia("(prefers-reduced-motion: reduce)").matches) {
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

  // Status changes are announced once, in one live region (a swapped-in card can't be).
  const lastStatus = new Map();
  const announcer = () => document.getElementById("announcer");
  function noteCards(root) {
    const cards = root.matches?.("article.gen") ? [root] : root.querySelectorAll?.("article.gen") || [];
    for (const card of cards) {
      const before = lastStatus.get(card.id);
      const now = card.dataset.status;
      lastStatus.set(card.id, now);
      const terminal = ["succeeded", "failed", "cancelled"].includes(now);
      if (before && before !== now && !terminal && announcer()) {
        const badge = card.querySelector(".badge");
        announcer().textContent = `${badge ? badge.textContent : now}: ${card.dataset.prompt}`;
      }
    }
  }

  // A clip that ends gets a notice wherever the member is on the page (views.live_cards).
  // A notice in the corner, with a Dismiss button; it goes after 12 s unless focused.
  function showToast(className, text, ...actions) {
    const box = document.getElementById("toasts");
    if (!box) return;
    const t = document.createElement("div");
    t.className = className;
    const p = document.createElement("p");
    p.textContent = text;
    const close = document.createElement("button");
    close.type = "button";
    close.className = "link";
    close.textContent = "Dismiss";
    close.addEventListener("click", () => t.remove());
    t.append(p, ...actions, close);
    box.append(t);
    const hide = setTimeout(() => t.remove(), 12000);
    t.addEventListener("focusin", () => clearTimeout(hide));
  }

  function toast({ id, status, prompt, url, remix_url: remixUrl }) {
    const ok = status === "succeeded";
    const link = document.createElement("a");
    const onPage = document.getElementById(`gen-${id}`);
    link.href = ok ? (onPage ? `#gen-${id}` : url) : remixUrl;
    link.textContent = ok ? "Watch" : "Edit and retry";
    if (!ok) link.dataset.remix = "";
    const text = ok ? `Finished: “${prompt}”` : `Failed: “${prompt}”`;
    showToast(`toast toast-${ok ? "ok" : "failed"}`, text, link);
  }
  // The page's one poll (views.live_cards) reports every clip that ended since the last.
  document.body.addEventListener("generationsFinished", (e) => {
    for (const clip of e.detail.value || e.detail) toast(clip);
  });
  // A sentence from the server that no card shows (views.generation_cancel: too late).
  document.body.addEventListener("notice", (e) => showToast("toast", e.detail.text));
  // A cancel gave a job's place in the budget back: the line under Generate and the
  // estimate's "won't fit" follow without a reload.
  document.body.addEventListener("budgetChanged", (e) => {
    const line = document.getElementById("budget-standing");
    if (line) line.textContent = e.detail.label;
    const room = document.getElementById("budget-room");
    const form = document.getElementById("prompt-form");
    if (!room || !form) return;
    const budget = JSON.parse(room.textContent);
    budget.jobs_left = e.detail.jobs_left;
    budget.usd_left = e.detail.usd_left;
    room.textContent = JSON.stringify(budget);
    applyMatrix(form);
  });
  // The page's one poll sends its live cards' tokens as one field: a hundred fields cost the
  // server more to parse than the rest of the poll (views.live_cards reads either form).
  document.body.addEventListener("htmx:configRequest", (e) => {
    if (e.detail.elt.id !== "live-poll") return;
    const form = e.detail.formData;
    const tokens = form.getAll("live");
    form.delete("live");
    form.set("live", tokens.join(" "));
  });

  // ---- Remix: fill the form in place when the studio is on screen ---------------------

  document.addEventListener("click", (e) => {
    const link = e.target.closest("a[data-remix]");
    const form = document.getElementById("prompt-form");
    if (!link || !form || !window.htmx || e.ctrlKey || e.metaKey || e.shiftKey) return;
    e.preventDefault();
    htmx.ajax("GET", link.href, { target: "#prompt-form", swap: "outerHTML" }).then(() => {
      const fresh = document.getElementById("prompt-form");
      fresh.scrollIntoView({ block: "start" });
      fresh.elements.prompt.focus();
    });
  });

  // ---- Copy prompt: buttons are hidden until this script can make them work ------------

  document.addEventListener("click", async (e) => {
    const button = e.target.closest("button[data-copy]");
    if (!button) return;
    const source = button.dataset.copy ? document.querySelector(button.dataset.copy) : null;
    const text = button.dataset.copyText ?? source?.textContent ?? "";
    const label = button.textContent;
    try {
      await navigator.clipboard.writeText(text.trim());
      button.textContent = "Copied";
      button.classList.add("copied");
      if (announcer()) announcer().textContent = "Prompt copied.";
    } catch {
      button.textContent = "Copy failed";
    }
    setTimeout(() => { button.textContent = label; button.classList.remove("copied"); }, 1500);
  });

  // ---- Wiring ------------------------------------------------------------------------

  htmx.onLoad((root) => {
    for (const b of root.querySelectorAll?.("button[data-copy][hidden]") || []) b.hidden = false;
    const form = root.id === "prompt-form" ? root : root.querySelector?.("#prompt-form");
    if (form) initForm(form);
    noteCards(root);
    // The first card replaces the "nothing yet" line.
    const empty = document.getElementById("no-cards");
    if (empty && document.querySelector("#my-cards .gen")) empty.remove();
  });

  // After a submit the form comes back (out of band when it worked): keep the keyboard there.
  document.body.addEventListener("htmx:afterRequest", (e) => {
    const cfg = e.detail.requestConfig;
    if (!cfg || cfg.verb !== "post" || cfg.elt?.id !== "prompt-form" || !e.detail.successful) return;
    const form = document.getElementById("prompt-form");
    if (!form) return;
    if (form.querySelector(".error")) {
      form.querySelector(".field:has(.error) textarea, fieldset:has(.error) input, .field:has(.error) input")?.focus();
    } else {
      if (announcer()) announcer().textContent = "Queued. The new card is first in My generations.";
      const card = document.querySelector("#my-cards article.gen");
      const box = card?.getBoundingClientRect();
      if (card && box && (box.top < 0 || box.top > window.innerHeight - 80)) {
        // The cards are below the form (a phone): show the new one where the member looks,
        // rather than leaving them at a form that just emptied with no sign of the job.
        card.scrollIntoView({ block: "center", behavior: "smooth" });
        card.classList.add("just-queued");
        card.addEventListener("animationend", () => card.classList.remove("just-queued"), { once: true });
      } else {
        form.elements.prompt.focus();
      }
    }
  });
})();
