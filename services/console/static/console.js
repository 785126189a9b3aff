// twofa console: a few lines of progressive enhancement; every page works without them.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Copy buttons (recovery codes).
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const status = button.parentElement.querySelector(".copy-status");
      try {
        await navigator.clipboard.writeText(button.dataset.copy);
        if (status) status.textContent = "Copied to the clipboard.";
      } catch (e) {
        if (status) status.textContent = "Could not copy: select the codes and copy them by hand.";
      }
    });
  }
  // The rollout counts follow the invitations as they go out, without a reload.
  const rollout = document.querySelector("[data-poll]");
  if (rollout) {
    const status = document.getElementById("rollout-status");
    const progress = document.getElementById("rollout-progress");
    const poll = async () => {
      try {
        const response = await fetch(rollout.dataset.poll, {credentials: "same-origin", cache: "no-store"});
        if (!response.ok) return;
        const policy = await response.json();
        const counts = policy.rollout;
        for (const [key, value] of Object.entries(counts)) {
          const cell = rollout.querySelector(`[data-count="${key}"]`);
          if (cell && cell.textContent !== String(value)) cell.textContent = String(value);
        }
        const text = !policy.require_two_factor ? status.dataset.off
          : counts.pending ? status.dataset.going : status.dataset.done;
        if (status.textContent !== text) status.textContent = text;  // announced once per change
        progress.max = counts.teammates || 1;
        progress.value = policy.require_two_factor ? counts.teammates - counts.pending : 0;
      } catch (e) { /* offline for a moment: the next poll tries again */ }
    };
    setInterval(() => { if (!document.hidden) poll(); }, 1000);
  }
});
