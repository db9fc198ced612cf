// Following an order live while the checkout saga runs.
//
// The gateway streams the order as Server-Sent Events from GET /api/v1/orders/{id}/events
// (gateway/order_events.py): the order as it is now, then each change, until it is settled.
// EventStream can't send an Authorization header, so the stream is read with fetch() and
// parsed here. Every (re)connection starts with the current order, so after a dropped
// connection the page simply reconnects, backing off while the gateway can't be reached.

import { ApiError, OFFLINE, problemOf } from "./http.js";
import { withFreshToken } from "./session.js";

// Nothing more will happen to the order unless its owner acts (the gateway's rule too):
// it left PENDING, no cancellation is under way, and its payment isn't midway (a confirmed
// order's card is charged a moment after it is confirmed).
const PAYMENT_IN_FLIGHT = new Set(["pending", "pending_unknown", "authorized"]);

export function settled(order) {
  return (
    order.status !== "PENDING" &&
    order.cancellation !== "requested" &&
    !(order.payment && PAYMENT_IN_FLIGHT.has(order.payment.status))
  );
}

function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

// Reads `event:`/`data:`/`retry:` blocks (the text/event-stream format) as they arrive.
async function readEvents(response, onEvent, onRetry) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer = (buffer + value).replace(/\r\n/g, "\n");
    let end = buffer.indexOf("\n\n");
    while (end >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue; // ":" starts a comment (keep-alive)
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") name = text;
        else if (field === "data") data.push(text);
        else if (field === "retry" && /^\d+$/.test(text)) onRetry(Number(text));
      }
      if (data.length) onEvent(name, data.join("\n"));
      end = buffer.indexOf("\n\n");
    }
  }
}

// Calls onOrder(order) with each new state of the order until it is settled or `signal`
// aborts; onTrouble(error) when the connection fails (null once it works again), and
// onTrouble(error, true) when retrying is pointless (the order isn't yours, say).
export function watchOrder(orderId, { onOrder, onTrouble, signal }) {
  const url = `/api/v1/orders/${encodeURIComponent(orderId)}/events`;
  let reconnect = 1000;
  let backoff = reconnect;
  (async () => {
    while (!signal.aborted) {
      let last = null;
      try {
        await withFreshToken(async (token) => {
          const response = await fetch(url, {
            headers: { accept: "text/event-stream", authorization: `Bearer ${token}` },
            signal,
            cache: "no-store",
          });
          if (!response.ok) throw await problemOf(response);
          onTrouble(null);
          backoff = reconnect;
          await readEvents(
            response,
            (name, data) => {
              if (name !== "order") return;
              last = JSON.parse(data);
              onOrder(last);
            },
            (ms) => {
              reconnect = ms;
            },
          );
        });
        if (last && settled(last)) return;
        await pause(reconnect, signal); // the stream ended on time; pick it up again
      } catch (error) {
        if (error.name === "AbortError" || signal.aborted) return;
        const problem = error instanceof ApiError ? error : new ApiError(OFFLINE);
        const final = problem.status >= 400 && problem.status < 500 && problem.status !== 429;
        onTrouble(problem, final);
        if (final) return;
        await pause(Math.max(backoff, (problem.retryAfter || 0) * 1000), signal);
        backoff = Math.min(backoff * 2, 30_000);
      }
    }
  })();
}
