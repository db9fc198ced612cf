// Mercato's storefront, the entry point: the header (search, cart count, unread count,
// signed in or not) and the router that puts one page at a time into <main>.
//
// A page is a module exporting `render({view, params, query, signal})`: it fills `view`
// (an empty element already on screen) and may keep working until `signal` aborts, which
// happens when the shopper goes to another page.

import { cartCount, onCartChange } from "./cart.js";
import { alertBox, clearToasts, h } from "./dom.js";
import { onUnreadChange, startMailbox, stopMailbox } from "./mailbox.js";
import * as account from "./pages/account.js";
import * as cart from "./pages/cart.js";
import * as catalog from "./pages/catalog.js";
import * as notifications from "./pages/notifications.js";
import * as order from "./pages/order.js";
import * as orders from "./pages/orders.js";
import * as product from "./pages/product.js";
import { go, here, setTitle } from "./router.js";
import { currentUser, onSessionChange, restore } from "./session.js";

const ROUTES = [
  { pattern: /^\/$/, render: catalog.render, nav: "shop" },
  { pattern: /^\/products\/([A-Za-z0-9-]{1,64})$/, render: product.render, nav: "shop" },
  { pattern: /^\/cart$/, render: cart.render, nav: "cart" },
  { pattern: /^\/orders$/, render: orders.render, nav: "orders" },
  { pattern: /^\/orders\/([A-Za-z0-9-]{1,64})$/, render: order.render, nav: "orders" },
  { pattern: /^\/notifications$/, render: notifications.render, nav: "notifications" },
  { pattern: /^\/signin$/, render: account.renderSignIn, nav: "signin" },
  { pattern: /^\/register$/, render: account.renderRegister, nav: "signin" },
  { pattern: /^\/account$/, render: account.renderAccount, nav: "account" },
];

const main = document.getElementById("main");
let shown = null; // the AbortController of the page on screen
let firstPage = true;

function notFound({ view }) {
  setTitle("Page not found");
  view.append(
    h("h1", {}, "Page not found"),
    h("p", {}, "There's nothing here. ", h("a", { href: "#/" }, "Back to the shop"), "."),
  );
}

async function showPage() {
  const { path, query } = here();
  const isFirst = firstPage; // the first page keeps the browser's own focus
  firstPage = false;
  shown?.abort();
  const controller = new AbortController();
  shown = controller;
  let params = [];
  const route = ROUTES.find((r) => {
    const match = r.pattern.exec(path);
    if (match) params = match.slice(1);
    return match;
  });
  markNav(route?.nav);
  clearToasts();
  const focusBefore = document.activeElement;
  const view = h("div", { class: "view" });
  main.replaceChildren(view);
  main.setAttribute("aria-busy", "true");
  if (!isFirst) window.scrollTo(0, 0);
  syncSearch(path, query);
  try {
    await (route ? route.render : notFound)({ view, params, query, signal: controller.signal });
  } catch (error) {
    if (controller.signal.aborted || error.name === "AbortError") return;
    setTitle("Not available right now");
    view.replaceChildren(
      h("h1", {}, "We couldn't show this page"),
      alertBox(error.message || "Something went wrong. Please try again."),
      h("button", { type: "button", class: "button", onclick: showPage }, "Try again"),
    );
  } finally {
    if (shown === controller) main.removeAttribute("aria-busy");
  }
  // Moving focus to the new heading tells keyboard and screen-reader users the page changed;
  // but not if they moved it themselves while the page loaded (typing in the search box).
  const heading = view.querySelector("h1");
  const focusNow = document.activeElement;
  const untouched = focusNow === focusBefore || focusNow === document.body || focusNow === null;
  if (heading && untouched && !isFirst && !controller.signal.aborted) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
}

function markNav(active) {
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

// -- the header ------------------------------------------------------------------------------

const searchInput = document.getElementById("search-input");

function syncSearch(path, query) {
  if (document.activeElement !== searchInput)
    searchInput.value = path === "/" ? query.get("q") || "" : "";
}

document.getElementById("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const q = searchInput.value.trim();
  go(q ? `/?q=${encodeURIComponent(q)}` : "/");
});

// The skip link would change the fragment (and so the page); move focus instead.
document.getElementById("skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});

function showBadge(id, linkId, count, label) {
  const badge = document.getElementById(id);
  badge.textContent = count ? String(count) : "";
  badge.hidden = !count;
  document.getElementById(linkId).setAttribute("aria-label", label);
}

function showCartCount() {
  const count = cartCount();
  showBadge(
    "cart-count",
    "nav-cart",
    count,
    count ? `Cart, ${count} ${count === 1 ? "item" : "items"}` : "Cart, empty",
  );
}

function showUnread(count) {
  showBadge(
    "unread-count",
    "nav-notifications",
    count,
    count ? `Notifications, ${count} unread` : "Notifications",
  );
}

function showSession(user) {
  for (const item of document.querySelectorAll("[data-signed-in]")) item.hidden = !user;
  for (const item of document.querySelectorAll("[data-signed-out]")) item.hidden = Boolean(user);
  if (user) startMailbox();
  else stopMailbox();
}

onCartChange(showCartCount);
onUnreadChange(showUnread);
onSessionChange((user) => {
  showSession(user);
  // A page that depends on who is signed in is drawn again (signing out on "My orders").
  if (!user && ["orders", "notifications", "account"].includes(here().path.split("/")[1]))
    showPage();
});

async function start() {
  showCartCount();
  await restore();
  showSession(currentUser());
  window.addEventListener("hashchange", showPage);
  await showPage();
}

start();
