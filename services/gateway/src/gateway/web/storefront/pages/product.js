// One product, #/products/<id>: the gateway composes catalog's product with inventory's
// live availability, and the page asks again every few seconds while it is on screen.

import { addToCart, cartLines, MAX_QUANTITY } from "../cart.js";
import { alertBox, announce, h, spinner, toast } from "../dom.js";
import { money } from "../format.js";
import { request } from "../http.js";
import { setTitle } from "../router.js";
import { productPicture, stockLine, stockText } from "./showcase.js";

const REFRESH_EVERY = 10_000;

export async function render({ view, params: [productId], signal }) {
  view.append(spinner("Loading the product…"));
  let product;
  try {
    product = await request(`/api/v1/products/${productId}`, { signal });
  } catch (error) {
    if (error.status !== 404) throw error;
    setTitle("Product not found");
    view.replaceChildren(
      h("h1", {}, "Product not found"),
      h(
        "p",
        {},
        "This product doesn't exist or was removed. ",
        h("a", { href: "#/" }, "Back to the shop"),
        ".",
      ),
    );
    return;
  }
  setTitle(product.name);

  const stock = h("div", { class: "product-stock" }); // changes are announced below
  const inCart = h("p", { class: "muted", "data-testid": "in-cart" });
  const quantity = h("input", {
    id: "quantity",
    name: "quantity",
    type: "number",
    min: 1,
    value: "1",
    inputmode: "numeric",
    required: true,
  });
  const addButton = h("button", { type: "submit", class: "button button--primary" }, "Add to cart");
  const problem = h("div");

  function show(availability) {
    stock.replaceChildren(stockLine(availability));
    const available = availability ? availability.available : MAX_QUANTITY;
    quantity.max = String(Math.max(1, Math.min(MAX_QUANTITY, available)));
    const soldOut = availability !== null && available <= 0;
    addButton.disabled = soldOut;
    quantity.disabled = soldOut;
    addButton.textContent = soldOut ? "Out of stock" : "Add to cart";
    const line = cartLines().find((l) => l.product_id === product.id);
    inCart.textContent = line ? `You have ${line.quantity} in your cart.` : "";
  }

  const form = h(
    "form",
    {
      class: "add-to-cart",
      novalidate: true,
      onsubmit: (event) => {
        event.preventDefault();
        problem.replaceChildren();
        const wanted = Number.parseInt(quantity.value, 10);
        const max = Number.parseInt(quantity.max, 10);
        if (!Number.isInteger(wanted) || wanted < 1 || wanted > max) {
          problem.replaceChildren(alertBox(`Please choose a quantity from 1 to ${max}.`));
          quantity.focus();
          return;
        }
        if (!addToCart(product, wanted)) {
          problem.replaceChildren(
            alertBox("Your cart is full. Check out or remove something first."),
          );
          return;
        }
        show(product.availability);
        toast(`Added ${wanted} × ${product.name} to your cart.`, {
          href: "#/cart",
          linkText: "View cart",
        });
      },
    },
    h(
      "div",
      { class: "field field--inline" },
      h("label", { for: "quantity" }, "Quantity"),
      quantity,
    ),
    addButton,
  );

  view.replaceChildren(
    h(
      "nav",
      { class: "breadcrumbs", "aria-label": "Breadcrumbs" },
      h(
        "ol",
        {},
        h("li", {}, h("a", { href: "#/" }, "Shop")),
        h(
          "li",
          {},
          h("a", { href: `#/?category=${product.category}` }, categoryName(product.category)),
        ),
      ),
    ),
    h(
      "article",
      { class: "product" },
      productPicture(product, "picture--large"),
      h(
        "div",
        { class: "product-info" },
        h("h1", {}, product.name),
        h("p", { class: "price price--large" }, money(product.price)),
        stock,
        h("p", { class: "description" }, product.description || ""),
        form,
        problem,
        inCart,
        h("p", { class: "muted small" }, `Item number ${product.sku}`),
      ),
    ),
  );
  show(product.availability);

  // Live availability: ask again while the page is open (and visible).
  let before = stockText(product.availability);
  const timer = setInterval(async () => {
    if (document.hidden) return;
    try {
      product = await request(`/api/v1/products/${productId}`, { signal });
    } catch {
      return; // the last known stock stays on screen
    }
    show(product.availability);
    const now = stockText(product.availability);
    if (now !== before) announce(`Stock changed: ${now || "unknown"}`);
    before = now;
  }, REFRESH_EVERY);
  signal.addEventListener("abort", () => clearInterval(timer));
}

function categoryName(slug) {
  return slug
    .split("-")
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1))
    .join(" ");
}
