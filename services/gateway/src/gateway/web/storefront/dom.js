// Building the page from nodes and text, never from HTML strings.
//
// The gateway sends `require-trusted-types-for 'script'` (gateway/sites.py): assigning a
// string to innerHTML throws, so text from the API (product names, notification bodies)
// can never become markup. h() is the small helper that makes that convenient:
//
//   h("a", { href: "#/cart", class: "button" }, "Cart ", h("span", { class: "badge" }, "2"))

const PROPERTIES = new Set(["value", "checked", "disabled", "hidden", "selected", "required"]);

export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (PROPERTIES.has(name)) {
      element[name] = value;
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

// Words read by screen readers only (a link's full name, say); see .visually-hidden.
export function hidden(text) {
  return h("span", { class: "visually-hidden" }, text);
}

// A polite announcement for screen readers (a status change, an item added). Cleared
// first so the same sentence twice is announced twice.
export function announce(message) {
  const region = document.getElementById("announcer");
  region.textContent = "";
  setTimeout(() => {
    region.textContent = message;
  }, 50);
}

// A short visible message in the corner, announced politely, gone after a while (or when
// the shopper goes to another page, unless it is news that outlives the page: `keep`).
export function toast(
  message,
  { href, linkText, tone = "info", duration = 8000, keep = false } = {},
) {
  const box = h(
    "div",
    { class: `toast toast--${tone}`, "data-keep": keep ? "true" : null },
    h("p", {}, message),
    href ? h("a", { href, onclick: () => box.remove() }, linkText || "View") : null,
    h(
      "button",
      {
        type: "button",
        class: "toast-close",
        "aria-label": "Dismiss",
        onclick: () => box.remove(),
      },
      "×",
    ),
  );
  document.getElementById("toasts").append(box);
  setTimeout(() => box.remove(), duration);
  return box;
}

// A message that belongs to a form or a page section, in plain words. role="alert" makes
// screen readers say it at once.
export function alertBox(message, tone = "error") {
  return h("div", { class: `notice notice--${tone}`, role: "alert" }, message);
}

export function spinner(label) {
  return h(
    "p",
    { class: "loading", role: "status" },
    h("span", { class: "spinner", "aria-hidden": "true" }),
    label,
  );
}

export function clearToasts() {
  for (const box of document.querySelectorAll(".toast:not([data-keep])")) box.remove();
}
