// One saga (#/sagas/<id>): its plan (the steps, their commands, replies and compensations)
// and its timeline (every transition orders recorded, with the message that caused it),
// and a link to the trace its steps ran in.

import { h, pill } from "../dom.js";
import { dateTime, shortId } from "../format.js";
import { follow } from "../live.js";
import { setTitle } from "../router.js";
import { api } from "../session.js";
import { STATUS_TONES } from "./sagas.js";

const EVENT_TONES = {
  started: "info",
  command_sent: "info",
  succeeded: "ok",
  completed: "ok",
  failed: "bad",
  timed_out: "bad",
  compensating: "warn",
  compensation_sent: "warn",
  compensated: "warn",
  reissued: "warn",
  ignored: "info",
};

function plan(steps) {
  return h(
    "ol",
    { class: "plan" },
    steps.map((step) =>
      h(
        "li",
        {},
        h("strong", {}, step.name),
        ` (${step.kind}) `,
        step.local
          ? h("span", { class: "muted" }, "done by orders itself")
          : h(
              "span",
              {},
              h("code", {}, step.command),
              " → ",
              h("code", {}, step.success),
              step.failure?.length ? [" or ", step.failure.map((f) => h("code", {}, f))] : "",
            ),
        step.compensation && step.compensation !== "local"
          ? h("span", { class: "muted" }, "; undone by ", h("code", {}, step.compensation))
          : "",
      ),
    ),
  );
}

function timeline(saga) {
  const start = Date.parse(saga.created_at);
  return h(
    "ol",
    { class: "timeline", "data-testid": "saga-timeline" },
    saga.history.map((entry) =>
      h(
        "li",
        { class: `event event--${EVENT_TONES[entry.event] || "info"}` },
        h("span", { class: "event-time" }, `+${Date.parse(entry.at) - start} ms`),
        h(
          "span",
          { class: "event-what" },
          h("strong", {}, entry.step || "saga"),
          " ",
          pill(entry.event.replace("_", " "), EVENT_TONES[entry.event] || "info"),
          entry.message_type ? [" ", h("code", {}, entry.message_type)] : "",
          entry.reason ? h("span", { class: "event-reason" }, ` ${entry.reason}`) : "",
        ),
      ),
    ),
  );
}

export async function render({ view, params, signal }) {
  const [id] = params;
  setTitle(`Saga ${shortId(id)}`);
  const region = h("div");
  view.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/sagas" }, "Sagas")),
    h("h1", {}, `Checkout saga ${shortId(id)}`),
    region,
  );
  await follow(region, signal, {
    every: 5,
    load: () => api(`/api/v1/console/sagas/${encodeURIComponent(id)}`, { signal }),
    draw: (saga) => [
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "State"),
        h("dd", { "data-testid": "saga-status" }, pill(saga.status, STATUS_TONES[saga.status])),
        h("dt", {}, "Order"),
        h("dd", {}, saga.correlation_id),
        h("dt", {}, "Started"),
        h("dd", {}, dateTime(saga.created_at)),
        h("dt", {}, "Finished"),
        h(
          "dd",
          {},
          saga.finished_at
            ? `${dateTime(saga.finished_at)}, after ${Date.parse(saga.finished_at) - Date.parse(saga.created_at)} ms`
            : `not yet: waiting on ${saga.step}`,
        ),
        saga.failure ? [h("dt", {}, "Failed at"), h("dd", {}, `${saga.failure.step}: ${saga.failure.reason}`)] : "",
        h("dt", {}, "Trace"),
        h(
          "dd",
          {},
          saga.trace_id
            ? h("a", { href: `#/traces/${saga.trace_id}` }, `Open trace ${shortId(saga.trace_id)}`)
            : h("span", { class: "muted" }, "not among the stored spans"),
        ),
      ),
      h("h2", {}, "Timeline"),
      timeline(saga),
      h("h2", {}, "Plan"),
      plan(saga.plan || []),
    ],
  });
}
