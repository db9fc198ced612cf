// Talking to the gateway: JSON in and out, and every failure turned into an ApiError that
// carries a sentence a shopper can read. The API answers errors as RFC 9457 problem+json
// ({type: "/problems/<slug>", status, detail, errors?}); the page never shows that raw.
//
// Only same-origin, relative URLs: the page talks to the gateway that served it and nothing
// else (the Content-Security-Policy says `connect-src 'self'` too).

import { seconds } from "./format.js";

export class ApiError extends Error {
  constructor(message, { status = 0, slug = "", retryAfter = null, fields = {} } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status; // 0: no answer at all (offline, gateway down)
    this.slug = slug; // the problem type's last segment: "email-taken", "rate-limited", …
    this.retryAfter = retryAfter; // seconds, when the answer said so
    this.fields = fields; // {email: "An email address must have an @-sign."}
  }
}

const WAIT = (retryAfter) =>
  retryAfter
    ? ` Please wait ${seconds(retryAfter)} and try again.`
    : " Please wait a moment and try again.";

// What to say for a problem type. Anything not here falls back on the HTTP status.
const MESSAGES = {
  "rate-limited": (p) => "You're going a little fast for us." + WAIT(p.retryAfter),
  "too-many-attempts": (p) => "Too many sign-in attempts." + WAIT(p.retryAfter),
  "too-many-pending-orders": (p) =>
    "You have several orders still being processed." + WAIT(p.retryAfter),
  "invalid-credentials": () => "That email address and password don't match an account.",
  "invalid-refresh-token": () => "Your session has ended. Please sign in again.",
  unauthenticated: () => "Please sign in again to continue.",
  forbidden: () => "Your account isn't allowed to do that.",
  "email-taken": () => "There's already an account with this email address. Sign in instead?",
  "service-unavailable": () =>
    "Part of Mercato isn't answering right now. Please try again in a moment.",
  "catalog-unavailable": () => "We can't check prices right now. Please try again in a moment.",
  "unknown-product": () => "Some items in your cart are no longer sold. Remove them and try again.",
  "duplicate-product": () => "Your cart lists a product twice. Remove one line and try again.",
  "mixed-currencies": () =>
    "Your cart mixes currencies. Please order items priced in one currency at a time.",
  "order-too-large": () => "This order is larger than we can take at once. Please split it.",
  "order-not-cancellable": () => "This order can no longer be cancelled.",
  "order-not-found": () => "We couldn't find that order.",
  "product-not-found": () => "We couldn't find that product. It may have been removed.",
  "not-found": () => "We couldn't find that.",
  "payload-too-large": () => "That's more than we can take in one go.",
};

function byStatus(status) {
  if (status === 401) return "Please sign in to continue.";
  if (status === 403) return "Your account isn't allowed to do that.";
  if (status === 404) return "We couldn't find that.";
  if (status === 409) return "That changed while you were looking. Please try again.";
  if (status === 429) return "You're going a little fast for us.";
  if (status >= 500) return "Something went wrong on our side. Please try again in a moment.";
  return "Something in the request wasn't right. Please check it and try again.";
}

function sentence(text) {
  const trimmed = text.trim();
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : capital + ".";
}

// An ApiError for a failed answer, read from its problem+json body when there is one.
export async function problemOf(response) {
  let problem = {};
  if ((response.headers.get("content-type") || "").includes("json")) {
    problem = await response.json().catch(() => ({}));
  }
  const slug = String(problem.type || "")
    .split("/")
    .pop();
  const header = Number.parseInt(response.headers.get("retry-after") || "", 10);
  const retryAfter = Number.isFinite(header) ? header : problem.retry_after || null;
  const fields = {};
  for (const error of Array.isArray(problem.errors) ? problem.errors : []) {
    const field = String(error.field || "")
      .split(".")
      .pop();
    if (field && error.message && !fields[field]) fields[field] = sentence(error.message);
  }
  const known = MESSAGES[slug];
  let message;
  if (known) message = known({ retryAfter });
  else if (Object.keys(fields).length) message = "Please correct the highlighted fields.";
  else if (response.status === 429) message = byStatus(429) + WAIT(retryAfter);
  else if (response.status < 500 && typeof problem.detail === "string" && problem.detail) {
    // The services word their 4xx details for people ("an order has 1 to 50 lines").
    message = sentence(problem.detail);
  } else message = byStatus(response.status);
  return new ApiError(message, { status: response.status, slug, retryAfter, fields });
}

export const OFFLINE = "We can't reach Mercato. Check your connection and try again.";

// fetch() with JSON, returning the parsed body (null for 204) or throwing an ApiError.
export async function request(path, { method = "GET", body, headers = {}, signal } = {}) {
  const init = { method, signal, headers: { accept: "application/json", ...headers } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["content-type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(OFFLINE);
  }
  if (!response.ok) throw await problemOf(response);
  return response.status === 204 ? null : response.json();
}

// "?a=1&b=2" from an object, leaving out empty values.
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

// A random Idempotency-Key. crypto.randomUUID() exists only on https (or localhost);
// getRandomValues() works everywhere.
export function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
