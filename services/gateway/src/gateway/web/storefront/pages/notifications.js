// The shopper's mailbox, #/notifications: what the platform told them (welcome, order
// confirmed, rejected, cancelled), newest first. Opening the page marks what it shows as
// read; the "New" marks stay until the page is left.

import { h, spinner, toast } from "../dom.js";
import { date } from "../format.js";
import { query as qs } from "../http.js";
import { recount } from "../mailbox.js";
import { setTitle, signInLink } from "../router.js";
import { authorized, currentUser } from "../session.js";

export async function render({ view, signal }) {
  setTitle("Notifications");
  view.append(h("h1", {}, "Notifications"));
  if (!currentUser()) {
    view.append(h("p", {}, "Sign in to see your notifications."), signInLink("/notifications"));
    return;
  }
  const loading = spinner("Loading your notifications…");
  view.append(loading);
  const page = await authorized("/api/v1/notifications?limit=20", { signal });
  loading.remove();
  if (!page.items.length) {
    view.append(
      h("p", { class: "empty" }, "Nothing here yet. We'll tell you here when your orders move."),
    );
    return;
  }
  const list = h("ul", { class: "mailbox", "aria-label": "Notifications" });
  const more = h(
    "button",
    { type: "button", class: "button button--secondary" },
    "Load older notifications",
  );
  let cursor = page.next_cursor;
  const add = async (items) => {
    list.append(...items.map(notificationItem));
    more.hidden = !cursor;
    await markRead(
      items.filter((item) => !item.read_at),
      signal,
    );
  };
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      const next = await authorized(`/api/v1/notifications${qs({ limit: 20, cursor })}`, {
        signal,
      });
      cursor = next.next_cursor;
      await add(next.items);
    } catch (error) {
      if (error.name !== "AbortError") toast(error.message, { tone: "error" });
    } finally {
      more.disabled = false;
    }
  });
  view.append(list, more);
  await add(page.items);
}

function notificationItem(item) {
  return h(
    "li",
    { class: `message${item.read_at ? "" : " message--unread"}` },
    h(
      "h2",
      { class: "message-title" },
      item.title,
      item.read_at ? null : h("span", { class: "tag" }, "New"),
    ),
    h(
      "p",
      { class: "muted small" },
      h("time", { datetime: item.created_at }, date(item.created_at)),
    ),
    h("p", { class: "message-body" }, item.body),
  );
}

async function markRead(unread, signal) {
  if (!unread.length) return;
  await Promise.allSettled(
    unread.map((item) =>
      authorized(`/api/v1/notifications/${item.id}/read`, { method: "POST", signal }),
    ),
  );
  await recount();
}
