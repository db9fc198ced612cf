// One order, #/orders/<id>, following the checkout saga live: PENDING, then CONFIRMED or
// REJECTED (and CANCELLED if the shopper cancels), without reloading the page.

import { alertBox, announce, h, spinner } from "../dom.js";
import { date, money, orderExplanation, STATUS_LABELS, shortId, times } from "../format.js";
import { checkMailboxSoon } from "../mailbox.js";
import { watchOrder, settled } from "../order-events.js";
import { setTitle, signInLink } from "../router.js";
import { authorized, currentUser } from "../session.js";

export function statusBadge(status, extra = {}) {
  return h(
    "span",
    { class: `status status--${status.toLowerCase()}`, "data-status": status, ...extra },
    STATUS_LABELS[status] || status,
  );
}

export async function render({ view, params: [orderId], signal }) {
  setTitle(`Order ${shortId(orderId)}`);
  if (!currentUser()) {
    view.append(
      h("h1", {}, `Order ${shortId(orderId)}`),
      h("p", {}, "Sign in to see this order."),
      signInLink(`/orders/${orderId}`),
    );
    return;
  }
  const loading = spinner("Loading your order…");
  const status = h("p", { class: "order-status" });
  const explanation = h("div", { class: "order-explanation", "data-testid": "order-explanation" });
  const trouble = h("div", { class: "order-trouble" });
  const actions = h("div", { class: "order-actions" });
  const payment = h("dl", { class: "facts" });
  const items = h("tbody");
  const total = h("td", { class: "number" });
  const placed = h("p", { class: "muted" });
  // The heading now, the details when the first state of the order arrives.
  const details = h(
    "div",
    { hidden: true },
    placed,
    h(
      "section",
      { class: "panel", "aria-labelledby": "order-status-title" },
      h("h2", { id: "order-status-title" }, "Status"),
      status,
      explanation,
      actions,
    ),
    h(
      "section",
      { "aria-labelledby": "order-items-title" },
      h("h2", { id: "order-items-title" }, "Items"),
      h(
        "table",
        { class: "items" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", { scope: "col" }, "Product"),
            h("th", { scope: "col", class: "number" }, "Quantity"),
            h("th", { scope: "col", class: "number" }, "Price"),
          ),
        ),
        items,
        h("tfoot", {}, h("tr", {}, h("th", { scope: "row", colspan: 2 }, "Total"), total)),
      ),
    ),
    h(
      "section",
      { "aria-labelledby": "order-payment-title" },
      h("h2", { id: "order-payment-title" }, "Payment"),
      payment,
    ),
  );
  view.replaceChildren(
    h("p", { class: "back" }, h("a", { href: "#/orders" }, "All your orders")),
    h("h1", {}, `Order ${shortId(orderId)}`),
    loading,
    trouble,
    details,
  );

  let shown = null;
  function show(order) {
    const changed = shown && shown.status !== order.status;
    const justSettled = shown && !settled(shown) && settled(order);
    shown = order;
    loading.remove();
    details.hidden = false;
    placed.textContent = `Placed on ${date(order.created_at)}`;
    status.replaceChildren(statusBadge(order.status, { "data-testid": "order-status" }));
    if (!settled(order)) status.append(h("span", { class: "spinner", "aria-hidden": "true" }));
    const words = orderExplanation(order);
    explanation.replaceChildren(order.status === "REJECTED" ? alertBox(words) : h("p", {}, words));
    items.replaceChildren(
      ...order.items.map((line) =>
        h(
          "tr",
          {},
          h("td", {}, h("a", { href: `#/products/${line.product_id}` }, line.name)),
          h("td", { class: "number" }, String(line.quantity)),
          h("td", { class: "number" }, money(times(line.unit_price, line.quantity))),
        ),
      ),
    );
    total.textContent = money(order.total);
    payment.replaceChildren(...paymentFacts(order));
    actions.replaceChildren(cancelControls(order));
    if (changed) {
      announce(
        `Order ${STATUS_LABELS[order.status].toLowerCase()}. ${order.status === "REJECTED" ? "" : words}`,
      );
    }
    if (justSettled) checkMailboxSoon(); // a notification is on its way
  }

  let watching = null; // one stream at a time: following again replaces the last one
  signal.addEventListener("abort", () => watching?.abort());
  function follow() {
    watching?.abort();
    watching = new AbortController();
    watchOrder(orderId, {
      signal: watching.signal,
      onOrder: show,
      onTrouble: (error, final) => {
        if (error && final && !shown) {
          // Not yours, or no such order: the same answer either way.
          loading.replaceWith(
            alertBox(error.message),
            h("p", {}, h("a", { href: "#/orders" }, "See your orders")),
          );
          return;
        }
        const words = error && (final ? error.message : `${error.message} We'll keep trying.`);
        trouble.replaceChildren(error ? alertBox(words, final ? "error" : "warning") : "");
      },
    });
  }

  function cancelControls(order) {
    const cancellable =
      (order.status === "PENDING" || order.status === "CONFIRMED") &&
      order.cancellation !== "requested";
    if (!cancellable) return "";
    const message = h("div");
    const confirmBox = h(
      "div",
      { class: "confirm", hidden: true },
      h(
        "p",
        {},
        order.status === "CONFIRMED"
          ? "Cancel this order? Your payment will be refunded."
          : "Cancel this order?",
      ),
      h(
        "button",
        {
          type: "button",
          class: "button button--danger",
          onclick: async (event) => {
            event.target.disabled = true;
            try {
              show({
                ...(await authorized(`/api/v1/orders/${orderId}/cancel`, {
                  method: "POST",
                  signal,
                })),
                payment: order.payment,
              });
              announce("Cancelling your order.");
              follow();
            } catch (error) {
              if (error.name === "AbortError") return;
              event.target.disabled = false;
              message.replaceChildren(alertBox(error.message));
            }
          },
        },
        "Yes, cancel the order",
      ),
      h(
        "button",
        {
          type: "button",
          class: "button button--secondary",
          onclick: () => {
            confirmBox.hidden = true;
            ask.hidden = false;
            ask.focus();
          },
        },
        "Keep the order",
      ),
    );
    const ask = h(
      "button",
      {
        type: "button",
        class: "button button--secondary",
        onclick: () => {
          ask.hidden = true;
          confirmBox.hidden = false;
          confirmBox.querySelector("button").focus();
        },
      },
      "Cancel order",
    );
    return h("div", {}, ask, confirmBox, message);
  }

  follow();
}

function paymentFacts(order) {
  const p = order.payment;
  if (!p) {
    return [
      h("dt", {}, "Payment"),
      h("dd", {}, order.status === "PENDING" ? "Not yet authorized" : "No payment was taken"),
    ];
  }
  const facts = [h("dt", {}, "Payment"), h("dd", {}, paymentWords(p.status))];
  if (p.captured.amount) facts.push(h("dt", {}, "Charged"), h("dd", {}, money(p.captured)));
  if (p.refunded.amount) facts.push(h("dt", {}, "Refunded"), h("dd", {}, money(p.refunded)));
  return facts;
}

function paymentWords(status) {
  const words = {
    pending: "Being authorized",
    pending_unknown: "Being checked with the card provider",
    authorized: "Authorized",
    captured: "Charged",
    declined: "Declined",
    voided: "Released, nothing charged",
    refunded: "Refunded",
  };
  return words[status] || status.charAt(0).toUpperCase() + status.slice(1).replace(/_/g, " ");
}
