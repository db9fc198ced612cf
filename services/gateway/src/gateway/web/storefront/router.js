// Pages are addressed by the URL fragment: #/products/<id>, #/cart, #/?q=lamp&category=home.
// A fragment never reaches the server, so the gateway serves one index for every page and
// the browser's back and forward buttons work as usual.

import { h } from "./dom.js";

export function go(path) {
  location.hash = path;
}

// The current route: {path: "/orders/abc", query: URLSearchParams}.
export function here() {
  const raw = location.hash.startsWith("#/") ? location.hash.slice(1) : "/";
  const mark = raw.indexOf("?");
  return {
    path: mark < 0 ? raw : raw.slice(0, mark),
    query: new URLSearchParams(mark < 0 ? "" : raw.slice(mark + 1)),
  };
}

// "#/signin?next=%2Fcart": where to come back to after signing in.
export function signInLink(next, text = "Sign in") {
  return h("a", { href: `#/signin?next=${encodeURIComponent(next)}`, class: "button" }, text);
}

// Only our own pages are followed after signing in (never an address from elsewhere).
export function safeNext(query, fallback = "/") {
  const next = query.get("next") || "";
  return /^\/[A-Za-z0-9/_?=&%.-]*$/.test(next) && !next.startsWith("//") ? next : fallback;
}

export function setTitle(text) {
  document.title = text ? `${text} · Mercato` : "Mercato";
}
