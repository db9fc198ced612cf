// How a product is shown wherever it appears: its picture and its stock line.

import { h } from "../dom.js";

// Products may carry no picture (the demo catalog has none), and pictures from other sites
// would break the page's `img-src 'self'` policy: those get a tile in a colour of their
// category with the product's initials, drawn by CSS.
export function productPicture(product, size = "") {
  if (
    product.image_url &&
    product.image_url.startsWith("/") &&
    !product.image_url.startsWith("//")
  ) {
    return h("img", { class: `picture ${size}`, src: product.image_url, alt: "", loading: "lazy" });
  }
  const initials = product.name
    .split(/\s+/)
    .filter((word) => /^[\p{L}\p{N}]/u.test(word))
    .slice(0, 2)
    .map((word) => word[0].toUpperCase())
    .join("");
  const tile = h("div", { class: `picture tile ${size}`, "aria-hidden": "true" }, initials);
  tile.style.setProperty("--hue", String(hue(product.category || "")));
  return tile;
}

function hue(text) {
  let hash = 0;
  for (const char of text) hash = (hash * 31 + char.codePointAt(0)) % 360;
  return hash;
}

// "In stock", "Only 3 left", "Out of stock"; availability null means inventory couldn't say.
export function stockText(availability) {
  if (!availability) return "";
  if (!availability.in_stock || availability.available <= 0) return "Out of stock";
  if (availability.available <= 5) return `Only ${availability.available} left`;
  return "In stock";
}

export function stockLine(availability) {
  const text = stockText(availability);
  const tone = !availability
    ? "unknown"
    : availability.available <= 0
      ? "out"
      : availability.available <= 5
        ? "low"
        : "in";
  return h(
    "p",
    { class: `stock stock--${tone}`, "data-testid": "stock" },
    text || "Stock unknown right now",
  );
}
