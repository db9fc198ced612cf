// The shopper's orders, newest first, #/orders.

import { h, spinner, toast } from "../dom.js";
import { date, money, plural, shortId } from "../format.js";
import { query as qs } from "../http.js";
import { setTitle, signInLink } from "../router.js";
import { authorized, currentUser } from "../session.js";
import { statusBadge } from "./order.js";

export async function render({ view, signal }) {
  setTitle("Your orders");
  view.append(h("h1", {}, "Your orders"));
  if (!currentUser()) {
    view.append(h("p", {}, "Sign in to see your orders."), signInLink("/orders"));
    return;
  }
  const loading = spinner("Loading your orders…");
  view.append(loading);
  const page = await authorized("/api/v1/orders?limit=20", { signal });
  loading.remove();
  if (!page.items.length) {
    view.append(
      h(
        "div",
        { class: "empty" },
        h("p", {}, "You haven't ordered anything yet."),
        h("p", {}, h("a", { href: "#/", class: "button" }, "Start shopping")),
      ),
    );
    return;
  }
  const list = h("ul", { class: "order-list", "aria-label": "Orders" });
  const more = h(
    "button",
    { type: "button", class: "button button--secondary" },
    "Load older orders",
  );
  let cursor = page.next_cursor;
  const add = (orders) => {
    list.append(...orders.map(orderRow));
    more.hidden = !cursor;
  };
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      const next = await authorized(`/api/v1/orders${qs({ limit: 20, cursor })}`, { signal });
      cursor = next.next_cursor;
      add(next.items);
    } catch (error) {
      if (error.name !== "AbortError") toast(error.message, { tone: "error" });
    } finally {
      more.disabled = false;
    }
  });
  view.append(list, more);
  add(page.items);
}

function orderRow(order) {
  const count = order.items.reduce((sum, line) => sum + line.quantity, 0);
  const names = order.items.map((line) => line.name).join(", ");
  return h(
    "li",
    { class: "order-row" },
    h(
      "div",
      { class: "order-row-main" },
      h(
        "h2",
        { class: "order-row-title" },
        h("a", { href: `#/orders/${order.id}` }, `Order ${shortId(order.id)}`),
      ),
      h("p", { class: "muted" }, `${date(order.created_at)} · ${plural(count, "item", "items")}`),
      h("p", { class: "order-row-names" }, names),
    ),
    h(
      "div",
      { class: "order-row-side" },
      statusBadge(order.status),
      h("p", { class: "price" }, money(order.total)),
    ),
  );
}
