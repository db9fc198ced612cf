// The cart lives in the browser (localStorage): nothing about it is secret, it survives
// closing the tab like a real shop's basket, and every tab sees the same one (the
// `storage` event tells the others). It keeps the name and price seen when the item was
// added, for display only: orders prices an order from catalog, and the cart page shows
// live prices and stock before checkout.

const KEY = "mercato.cart.v1";
export const MAX_QUANTITY = 100; // per line, as orders accepts
export const MAX_LINES = 50;

const listeners = new Set();

function read() {
  try {
    const lines = JSON.parse(localStorage.getItem(KEY) || "[]");
    return Array.isArray(lines)
      ? lines.filter((line) => line && line.product_id && line.quantity > 0)
      : [];
  } catch {
    return [];
  }
}

function write(lines) {
  localStorage.setItem(KEY, JSON.stringify(lines));
  changed();
}

function changed() {
  for (const listener of listeners) listener(read());
}

window.addEventListener("storage", (event) => {
  if (event.key === KEY || event.key === null) changed();
});

export function onCartChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function cartLines() {
  return read();
}

export function cartCount() {
  return read().reduce((sum, line) => sum + line.quantity, 0);
}

function clamp(quantity) {
  return Math.max(1, Math.min(MAX_QUANTITY, Math.floor(quantity) || 1));
}

// Adds `quantity` of a product; false when the cart has no room for another line.
export function addToCart(product, quantity = 1) {
  const lines = read();
  const line = lines.find((l) => l.product_id === product.id);
  if (line) {
    line.quantity = clamp(line.quantity + quantity);
  } else {
    if (lines.length >= MAX_LINES) return false;
    lines.push({
      product_id: product.id,
      name: product.name,
      price: product.price,
      quantity: clamp(quantity),
    });
  }
  write(lines);
  return true;
}

export function setQuantity(productId, quantity) {
  write(
    read().map((line) =>
      line.product_id === productId ? { ...line, quantity: clamp(quantity) } : line,
    ),
  );
}

export function removeFromCart(productId) {
  write(read().filter((line) => line.product_id !== productId));
}

export function clearCart() {
  write([]);
}
