// Traces (#/traces?view=recent|slowest|errors): traces from the span files every process
// writes, newest first, slowest first, or those with an error span.

import { h, pill, table } from "../dom.js";
import { dateTime, ms, shortId } from "../format.js";
import { follow } from "../live.js";
import { setTitle } from "../router.js";
import { api } from "../session.js";

const VIEWS = [
  ["recent", "Recent"],
  ["slowest", "Slowest"],
  ["errors", "With errors"],
];

export async function render({ view, query, signal }) {
  const chosen = VIEWS.some(([key]) => key === query.get("view")) ? query.get("view") : "recent";
  setTitle("Traces");
  const region = h("div");
  view.append(
    h("h1", {}, "Traces"),
    h(
      "nav",
      { class: "tabs", "aria-label": "Which traces" },
      VIEWS.map(([key, text]) =>
        h("a", { href: `#/traces?view=${key}`, "aria-current": key === chosen ? "page" : null }, text),
      ),
    ),
    region,
  );
  await follow(region, signal, {
    every: 10,
    load: () => api(`/api/v1/console/traces?view=${chosen}&limit=40`, { signal }),
    draw: (data) =>
      table(
        "Traces",
        ["Trace", "Started", "Root", "Duration", "Spans", "Services", "Errors"],
        data.items.map((t) => [
          h("a", { href: `#/traces/${t.trace_id}`, "data-trace": t.trace_id }, shortId(t.trace_id)),
          dateTime(t.start),
          `${t.root_service}: ${t.root}`,
          ms(t.duration_ms),
          t.spans,
          t.services.length,
          t.errors ? pill(String(t.errors), "bad") : "0",
        ]),
        { empty: chosen === "errors" ? "No trace has an error span." : "No traces stored yet." },
      ),
  });
}
