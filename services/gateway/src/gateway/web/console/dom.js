// Building the page from nodes and text, never from HTML strings (the gateway sends
// `require-trusted-types-for 'script'`, so innerHTML = "…" would throw). The same small
// h() as the storefront's, plus svg() for charts and the service map.
//
//   h("a", { href: "#/sagas", class: "button" }, "Sagas ", h("span", { class: "badge" }, "3"))

const PROPERTIES = new Set(["value", "checked", "disabled", "hidden", "selected", "required"]);
const SVG = "http://www.w3.org/2000/svg";

function build(element, props, children) {
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
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function h(tag, props = {}, ...children) {
  return build(document.createElement(tag), props, children);
}

export function svg(tag, props = {}, ...children) {
  return build(document.createElementNS(SVG, tag), props, children);
}

// Words read by screen readers only.
export function hidden(text) {
  return h("span", { class: "visually-hidden" }, text);
}

// A polite announcement for screen readers; cleared first so a repeat is announced too.
export function announce(message) {
  const region = document.getElementById("announcer");
  region.textContent = "";
  setTimeout(() => {
    region.textContent = message;
  }, 50);
}

export function alertBox(message, tone = "error") {
  return h("div", { class: `notice notice--${tone}`, role: "alert" }, message);
}

export function notice(message, tone = "info") {
  return h("p", { class: `notice notice--${tone}` }, message);
}

export function spinner(label) {
  return h(
    "p",
    { class: "loading", role: "status" },
    h("span", { class: "spinner", "aria-hidden": "true" }),
    label,
  );
}

// A coloured word for a state (ready, open, COMPLETED…): `tone` is ok, warn, bad or info.
export function pill(text, tone) {
  return h("span", { class: `pill pill--${tone}` }, text);
}

// A table from column headings and rows of cells (nodes or text).
export function table(caption, headings, rows, { empty = "Nothing to show." } = {}) {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, headings.map((text) => h("th", { scope: "col" }, text)))),
      h(
        "tbody",
        {},
        rows.map((cells) => h("tr", {}, cells.map((cell) => h("td", {}, cell)))),
      ),
    ),
  );
}
