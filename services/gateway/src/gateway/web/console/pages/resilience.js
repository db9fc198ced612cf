// Resilience (#/resilience): circuit breakers, outbox backlogs, consumer lag (from each
// instance's /metrics, as last scraped), and the dead letters on the broker, each of which
// can be replayed to its consumer or dropped, after a confirmation.

import { confirmable } from "../confirm.js";
import { alertBox, h, pill, table } from "../dom.js";
import { dateTime, duration, number, plural } from "../format.js";
import { follow } from "../live.js";
import { setTitle } from "../router.js";
import { api } from "../session.js";

const BREAKER_TONES = { closed: "ok", half_open: "warn", open: "bad", forced_open: "bad" };

function signals(data) {
  const panel = (title, note, content) =>
    h("section", { class: "panel" }, h("h2", {}, title), note ? h("p", { class: "muted small" }, note) : "", content);
  return [
    h(
      "div",
      { class: "panels" },
      panel(
        "Circuit breakers",
        "One per calling instance and service it calls. Open: calls fail fast.",
        table(
          "Circuit breakers by calling instance",
          ["Caller", "Calls", "State"],
          data.breakers.map((b) => [
            b.instance_id,
            b.target,
            pill(b.state.replace("_", "-"), BREAKER_TONES[b.state] || "info"),
          ]),
          { empty: "No breaker yet: one appears with the first call to a service." },
        ),
      ),
      panel(
        "Outboxes",
        "Events committed with their change, not yet on the broker.",
        table(
          "Outbox backlog per service",
          ["Service", "Waiting", "Oldest for"],
          data.outboxes.map((o) => [
            o.service,
            number(o.backlog),
            o.backlog ? duration(o.oldest_age_seconds) : "–",
          ]),
        ),
      ),
      panel(
        "Consumers",
        "Messages on the broker not yet delivered to each consumer group.",
        table(
          "Consumer lag per consumer group",
          ["Service", "Consumer", "Lag"],
          data.consumers.map((c) => [c.service, c.consumer, number(c.lag)]),
        ),
      ),
    ),
    h(
      "p",
      { class: "muted small" },
      `As the services last counted them: ${number(data.sagas_active)} active sagas, ` +
        `${number(data.dead_letters_stored)} dead letters stored.`,
      data.not_scraped.length ? ` Not answering /metrics: ${data.not_scraped.join(", ")}.` : "",
    ),
  ];
}

function envelopeFacts(letter) {
  const envelope = letter.envelope;
  return h(
    "details",
    { class: "letter-details" },
    h("summary", {}, "The message"),
    envelope
      ? h(
          "dl",
          { class: "facts" },
          ["type", "source", "subject", "id", "correlation_id", "time"].flatMap((key) =>
            envelope[key] ? [h("dt", {}, key), h("dd", {}, String(envelope[key]))] : [],
          ),
          h("dt", {}, "data"),
          h("dd", {}, h("pre", { class: "data" }, JSON.stringify(envelope.data, null, 2))),
        )
      : h("pre", { class: "data" }, letter.raw),
  );
}

function letterItem(letter, refresh) {
  const act = (action, past) =>
    confirmable({
      label: action === "replay" ? "Replay…" : "Discard…",
      question:
        action === "replay"
          ? `Deliver this ${letter.type || "message"} again to ${letter.consumer}, and only to it?`
          : "Drop this dead letter for good? The message is lost.",
      yes: action === "replay" ? `Yes, replay to ${letter.consumer}` : "Yes, discard it",
      no: "Leave it",
      tone: action === "replay" ? "primary" : "danger",
      act: async () => {
        await api(`/api/v1/console/dead-letters/${encodeURIComponent(letter.id)}/${action}`, {
          method: "POST",
        });
        setTimeout(refresh, 1500);
      },
      done: () => `${past}: ${letter.type || "the message"} for ${letter.consumer}.`,
    });
  return h(
    "li",
    { class: "letter", "data-letter": letter.id, "data-message-id": letter.message_id || "" },
    h(
      "p",
      { class: "letter-head" },
      h("strong", {}, letter.type || "unreadable message"),
      ` for ${letter.consumer}, ${plural(letter.attempts, "attempt")}, dead since ${dateTime(letter.dead_at)}`,
    ),
    h("p", { class: "letter-reason" }, letter.reason),
    envelopeFacts(letter),
    h("div", { class: "letter-actions" }, act("replay", "Replayed"), act("discard", "Discarded")),
  );
}

async function deadLetters(region, signal) {
  const list = h("div", { "data-testid": "dead-letters" });
  const refresh = async () => {
    try {
      const { items } = await api("/api/v1/console/dead-letters", { signal });
      list.replaceChildren(
        items.length
          ? h(
              "div",
              {},
              h("p", { class: "summary" }, `${plural(items.length, "dead letter")} on the broker.`),
              h("ul", { class: "letters" }, items.map((letter) => letterItem(letter, refresh))),
            )
          : h("p", { class: "muted" }, "No dead letters. Every message was handled."),
      );
    } catch (error) {
      if (error.name !== "AbortError") list.replaceChildren(alertBox(error.message));
    }
  };
  region.append(
    h("h2", {}, "Dead letters"),
    h(
      "p",
      { class: "muted small" },
      "Messages a consumer gave up on: refused outright, or still failing after its retries. " +
        "Replaying sends one back to the consumer that failed it; if it fails again it comes back here.",
    ),
    h(
      "button",
      { type: "button", class: "button button--secondary", onclick: refresh },
      "Refresh the dead letters",
    ),
    list,
  );
  await refresh();
}

export async function render({ view, signal }) {
  setTitle("Resilience");
  const live = h("div");
  const letters = h("section", { "aria-label": "Dead letters" });
  view.append(h("h1", {}, "Resilience"), live, letters);
  await Promise.all([
    follow(live, signal, {
      every: 5,
      load: () => api("/api/v1/console/resilience", { signal }),
      draw: signals,
    }),
    deadLetters(letters, signal),
  ]);
}
