// Talking to the gateway: JSON in and out, every failure an ApiError with a sentence.
//
// Operators are better served by the problem's own words than by a shopper's paraphrase,
// so the console shows the problem+json `detail` (RFC 9457) where there is one, and never
// the raw document. Only same-origin, relative URLs (the CSP says `connect-src 'self'`).

export class ApiError extends Error {
  constructor(message, { status = 0, slug = "" } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status; // 0: no answer at all
    this.slug = slug; // the problem type's last segment: "forbidden", "not-available-here", …
  }
}

function sentence(text) {
  const trimmed = String(text).trim();
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

function byStatus(status) {
  if (status === 401) return "Please sign in again.";
  if (status === 403) return "This account may not use the operations console.";
  if (status === 404) return "It isn't there (any more).";
  if (status === 429) return "Too many requests; wait a moment.";
  if (status >= 500) return `The gateway answered ${status}; try again in a moment.`;
  return `The request was refused (${status}).`;
}

export async function problemOf(response) {
  let problem = {};
  if ((response.headers.get("content-type") || "").includes("json")) {
    problem = await response.json().catch(() => ({}));
  }
  const slug = String(problem.type || "")
    .split("/")
    .pop();
  const message =
    response.status === 401 || response.status === 403 || !problem.detail
      ? byStatus(response.status)
      : sentence(problem.detail);
  return new ApiError(message, { status: response.status, slug });
}

export const OFFLINE = "The gateway doesn't answer. Is the platform running?";

// fetch() with JSON: the parsed body (null for 204), or an ApiError.
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
