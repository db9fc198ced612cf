// The cart and checkout, #/cart. Lines come from the browser's cart; prices and stock are
// asked again so the shopper sees what orders will charge. Placing the order answers at
// once (202, PENDING): the checkout saga reserves stock and charges the card after, and the
// order's page follows it live.

import {
  cartLines,
  clearCart,
  MAX_QUANTITY,
  onCartChange,
  removeFromCart,
  setQuantity,
} from "../cart.js";
import { alertBox, announce, h, hidden, spinner } from "../dom.js";
import { money, times, totals } from "../format.js";
import { newKey, request } from "../http.js";
import { checkMailboxSoon } from "../mailbox.js";
import { go, setTitle, signInLink } from "../router.js";
import { authorized, currentUser } from "../session.js";
import { productPicture } from "./showcase.js";

// Stripe-style test tokens the simulated payment provider understands.
const TEST_CARDS = [
  ["tok_visa", "Test Visa card, approved"],
  ["tok_chargeDeclined", "Test card that is declined"],
  ["tok_insufficientFunds", "Test card with insufficient funds"],
];

// One Idempotency-Key per attempt to buy this cart: pressing "Place order" again after a
// lost answer replays the first order instead of placing a second. A changed cart is a
// new attempt.
let attempt = { key: newKey(), cart: "" };

function keyFor(lines, token) {
  const cart = JSON.stringify([lines.map((l) => [l.product_id, l.quantity]), token]);
  if (attempt.cart !== cart) attempt = { key: newKey(), cart };
  return attempt.key;
}

export async function render({ view, signal }) {
  setTitle("Your cart");
  view.append(h("h1", {}, "Your cart"), spinner("Checking prices and stock…"));
  const live = new Map(); // product id -> the product as catalog and inventory say now
  await Promise.all(
    cartLines().map(async (line) => {
      try {
        live.set(line.product_id, await request(`/api/v1/products/${line.product_id}`, { signal }));
      } catch (error) {
        if (error.name === "AbortError") throw error;
        live.set(line.product_id, error.status === 404 ? "gone" : null);
      }
    }),
  );
  const draw = () => drawCart(view, live, signal);
  const stop = onCartChange(draw);
  signal.addEventListener("abort", stop);
  draw();
}

function drawCart(view, live, signal) {
  const lines = cartLines();
  if (!lines.length) {
    view.replaceChildren(
      h("h1", {}, "Your cart"),
      h(
        "div",
        { class: "empty" },
        h("p", {}, "Your cart is empty."),
        h("p", {}, h("a", { href: "#/", class: "button" }, "Start shopping")),
      ),
    );
    return;
  }
  const problems = [];
  const rows = lines.map((line) => {
    const product = live.get(line.product_id);
    const price = product && product !== "gone" ? product.price : line.price;
    const name = product && product !== "gone" ? product.name : line.name;
    let warning = null;
    if (product === "gone") {
      warning = "This product is no longer sold. Please remove it.";
    } else if (product && product.availability) {
      const available = product.availability.available;
      if (available <= 0) warning = "Out of stock. Please remove it to check out.";
      else if (available < line.quantity)
        warning = `Only ${available} left. Lower the quantity to check out.`;
    }
    if (warning) problems.push(`${name}: ${warning}`);
    const inputId = `qty-${line.product_id}`;
    return h(
      "li",
      { class: "cart-line" },
      productPicture(
        product && product !== "gone" ? product : { name, category: "" },
        "picture--small",
      ),
      h(
        "div",
        { class: "cart-line-info" },
        h(
          "h2",
          { class: "cart-line-name" },
          h("a", { href: `#/products/${line.product_id}` }, name),
        ),
        h("p", { class: "muted" }, `${money(price)} each`),
        warning ? h("p", { class: "line-warning" }, warning) : null,
      ),
      h(
        "div",
        { class: "cart-line-controls" },
        h("label", { for: inputId }, "Quantity", hidden(` of ${name}`)),
        h("input", {
          id: inputId,
          type: "number",
          min: 1,
          max: MAX_QUANTITY,
          value: String(line.quantity),
          inputmode: "numeric",
          onchange: (event) =>
            setQuantity(line.product_id, Number.parseInt(event.target.value, 10)),
        }),
        h(
          "button",
          {
            type: "button",
            class: "button button--link",
            onclick: () => removeFromCart(line.product_id),
          },
          "Remove",
          hidden(` ${name}`),
        ),
      ),
      h("p", { class: "cart-line-total" }, money(times(price, line.quantity))),
    );
  });
  const sums = totals(
    lines.map((line) => times(live.get(line.product_id)?.price || line.price, line.quantity)),
  );

  view.replaceChildren(
    h("h1", {}, "Your cart"),
    h("ul", { class: "cart-lines", "aria-label": "Items in your cart" }, rows),
    h(
      "p",
      { class: "cart-total" },
      "Total: ",
      h("strong", { "data-testid": "cart-total" }, sums.map(money).join(" + ")),
    ),
    checkout(lines, problems, signal),
  );
}

function checkout(lines, problems, signal) {
  const section = h(
    "section",
    { class: "checkout", "aria-labelledby": "checkout-title" },
    h("h2", { id: "checkout-title" }, "Check out"),
  );
  if (!currentUser()) {
    section.append(
      h("p", {}, "Sign in or create an account to place your order."),
      signInLink("/cart", "Sign in to check out"),
    );
    return section;
  }
  if (problems.length) {
    section.append(alertBox(`Before you check out: ${problems.join(" ")}`, "warning"));
    return section;
  }
  const message = h("div", { "data-testid": "checkout-message" });
  const button = h("button", { type: "submit", class: "button button--primary" }, "Place order");
  const form = h(
    "form",
    {
      onsubmit: async (event) => {
        event.preventDefault();
        const token = new FormData(form).get("payment_token");
        message.replaceChildren();
        button.disabled = true;
        button.textContent = "Placing your order…";
        try {
          const order = await authorized("/api/v1/orders", {
            method: "POST",
            body: {
              items: lines.map((l) => ({ product_id: l.product_id, quantity: l.quantity })),
              payment_token: token,
            },
            headers: { "Idempotency-Key": keyFor(lines, token) },
            signal,
          });
          attempt = { key: newKey(), cart: "" };
          clearCart();
          announce("Order placed. Following its progress.");
          checkMailboxSoon();
          go(`/orders/${order.id}`);
        } catch (error) {
          if (error.name === "AbortError") return;
          message.replaceChildren(alertBox(error.message));
          button.disabled = false;
          button.textContent = "Place order";
        }
      },
    },
    h(
      "fieldset",
      { class: "cards" },
      h("legend", {}, "Payment (test cards only, nothing is really charged)"),
      TEST_CARDS.map(([value, label], index) =>
        h(
          "div",
          { class: "radio" },
          h("input", {
            type: "radio",
            id: `card-${value}`,
            name: "payment_token",
            value,
            checked: index === 0,
          }),
          h("label", { for: `card-${value}` }, label),
        ),
      ),
    ),
    message,
    button,
  );
  section.append(form);
  return section;
}
