// Pages that follow the platform: load, draw, wait, again, until the page is left.
//
// `follow(region, signal, {every, load, draw})` calls load() (an API call), then draw(data)
// into `region`, every `every` seconds, until `signal` aborts. It resolves once the first
// drawing is on screen (or rejects with the first failure, for the router to show); after
// that a failed load keeps the last drawing and says what went wrong above it, so a service
// being down (which is when people look) never blanks the page. While the keyboard focus is
// inside the region, redrawing waits: it would pull the focused control away.

import { alertBox, h } from "./dom.js";
import { time } from "./format.js";

export function pause(seconds, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, seconds * 1000);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}

export function follow(region, signal, { every, load, draw }) {
  const status = h("p", { class: "live-status muted small", "data-testid": "live-status" });
  const problem = h("div");
  const body = h("div");
  region.replaceChildren(status, problem, body);
  return new Promise((resolve, reject) => {
    let drawn = false;
    (async () => {
      while (!signal.aborted) {
        if (drawn && body.contains(document.activeElement)) {
          await pause(1, signal); // the operator is working in there: redraw later
          continue;
        }
        try {
          const data = await load();
          if (signal.aborted) break;
          body.replaceChildren(...[draw(data)].flat());
          problem.replaceChildren();
          status.textContent = `Updated ${time(Date.now())}, every ${every} s.`;
          if (!drawn) resolve();
          drawn = true;
        } catch (error) {
          if (signal.aborted || error.name === "AbortError") break;
          if (!drawn) {
            reject(error);
            return;
          }
          problem.replaceChildren(alertBox(`${error.message} Showing what was there before.`));
        }
        await pause(every, signal);
      }
      resolve();
    })();
  });
}
