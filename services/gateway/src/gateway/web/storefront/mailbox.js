// The notifications mailbox as the header sees it: how many are unread, and a toast when a
// new one arrives. Notifications come from events (an order confirmed, a welcome), a moment
// after what caused them, so the count is polled: slowly all the time, quickly for a few
// seconds after something that will cause one (an order settling).

import { toast } from "./dom.js";
import { authorized, currentUser } from "./session.js";

const EVERY = 20_000;
const SOON = [500, 1500, 3000, 6000, 10_000];

let unread = null; // null: not known yet (no toast for what was there before)
let slow = null;
let quick = [];
const listeners = new Set();

export function onUnreadChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function publish(count) {
  unread = count;
  for (const listener of listeners) listener(count);
}

async function check() {
  if (!currentUser() || document.hidden) return;
  try {
    const { unread: count } = await authorized("/api/v1/notifications/unread-count");
    if (unread !== null && count > unread) {
      const { items } = await authorized("/api/v1/notifications?unread=true&limit=1");
      if (items.length) {
        toast(`New notification: ${items[0].title}`, {
          href: "#/notifications",
          linkText: "See notifications",
          keep: true,
          duration: 15_000,
        });
      }
    }
    publish(count);
  } catch {
    // A missed count is shown at the next poll; a background poll never interrupts.
  }
}

export function startMailbox() {
  stopMailbox();
  check();
  slow = setInterval(check, EVERY);
  document.addEventListener("visibilitychange", check);
}

export function stopMailbox() {
  clearInterval(slow);
  quick.forEach(clearTimeout);
  quick = [];
  document.removeEventListener("visibilitychange", check);
  publish(null);
}

// Something just happened that will put a notification in the mailbox.
export function checkMailboxSoon() {
  quick.forEach(clearTimeout);
  quick = SOON.map((ms) => setTimeout(check, ms));
}

// The mailbox page read some: count again now (no toast for what was just seen).
export async function recount() {
  unread = null;
  await check();
}
