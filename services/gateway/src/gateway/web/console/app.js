// Mercato's operations console, the entry point: who is signed in, and the router that puts
// one page at a time into <main>.
//
// A page is a module exporting `render({view, params, query, signal})`: it fills `view` (an
// empty element already on screen) and may keep following the platform until `signal`
// aborts, which happens when the operator goes to another page. Every page but sign-in
// needs an operator (an account with the `admin` role); without one, sign-in is shown in
// its place and the page follows once signed in.

import { alertBox, h } from "./dom.js";
import * as faults from "./pages/faults.js";
import * as metrics from "./pages/metrics.js";
import * as resilience from "./pages/resilience.js";
import * as saga from "./pages/saga.js";
import * as sagas from "./pages/sagas.js";
import * as services from "./pages/services.js";
import * as signin from "./pages/signin.js";
import * as traceView from "./pages/trace.js";
import * as traces from "./pages/traces.js";
import { here, setTitle } from "./router.js";
import { currentUser, onSessionChange, restore, signOut } from "./session.js";

const ID = "([A-Za-z0-9._:-]{1,128})";
const ROUTES = [
  { pattern: /^\/$/, render: services.render, nav: "services" },
  { pattern: /^\/metrics$/, render: metrics.render, nav: "metrics" },
  { pattern: /^\/resilience$/, render: resilience.render, nav: "resilience" },
  { pattern: /^\/sagas$/, render: sagas.render, nav: "sagas" },
  { pattern: new RegExp(`^/sagas/${ID}$`), render: saga.render, nav: "sagas" },
  { pattern: /^\/traces$/, render: traces.render, nav: "traces" },
  { pattern: /^\/traces\/([0-9a-f]{32})$/, render: traceView.render, nav: "traces" },
  { pattern: /^\/faults$/, render: faults.render, nav: "faults" },
];

const main = document.getElementById("main");
let shown = null; // the AbortController of the page on screen
let firstPage = true;

function notFound({ view }) {
  setTitle("Page not found");
  view.append(
    h("h1", {}, "Page not found"),
    h("p", {}, "There's nothing here. ", h("a", { href: "#/" }, "Back to the services"), "."),
  );
}

async function showPage() {
  const { path, query } = here();
  const isFirst = firstPage;
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
  const operator = currentUser();
  markNav(operator ? route?.nav : null);
  const view = h("div", { class: "view" });
  main.replaceChildren(view);
  main.setAttribute("aria-busy", "true");
  const render = !operator ? signin.render : route ? route.render : notFound;
  try {
    // Resolves once the page is first drawn; a live page keeps following after that.
    await render({ view, params, query, signal: controller.signal });
  } catch (error) {
    if (controller.signal.aborted || error.name === "AbortError") return;
    if (error.status === 401) {
      await signOut();
      return;
    }
    setTitle("Not available right now");
    view.replaceChildren(
      h("h1", {}, "This page can't be shown right now"),
      alertBox(error.message || "Something went wrong."),
      h("button", { type: "button", class: "button", onclick: showPage }, "Try again"),
    );
  } finally {
    if (shown === controller) main.removeAttribute("aria-busy");
  }
  if (!isFirst && !controller.signal.aborted) {
    const heading = view.querySelector("h1");
    heading?.setAttribute("tabindex", "-1");
    heading?.focus({ preventScroll: true });
  }
}

function markNav(active) {
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function showOperator(user) {
  document.getElementById("console-nav").hidden = !user;
  document.getElementById("who").hidden = !user;
  document.getElementById("who-email").textContent = user ? user.email : "";
}

document.getElementById("sign-out").addEventListener("click", () => signOut());
document.getElementById("skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});

onSessionChange((user) => {
  showOperator(user);
  showPage();
});

async function start() {
  await restore();
  showOperator(currentUser());
  window.addEventListener("hashchange", showPage);
  await showPage();
}

start();
