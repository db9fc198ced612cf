// One trace (#/traces/<id>) as a waterfall: each span on a row, indented under its parent,
// with a bar on the trace's time axis coloured by service; errors in red. Choosing a row
// shows the span's attributes and events. The same tree as `mercato trace <id>`.

import { h } from "../dom.js";
import { dateTime, ms, shortId } from "../format.js";
import { pause } from "../live.js";
import { setTitle } from "../router.js";
import { api } from "../session.js";

function details(span) {
  const attributes = Object.entries(span.attributes || {});
  return h(
    "div",
    { class: "span-details" },
    h("p", {}, `${span.kind} span in ${span.service} (${span.instance}), ${ms(span.duration_ms)}`),
    span.error ? h("p", { class: "notice notice--error" }, span.error) : "",
    attributes.length
      ? h(
          "dl",
          { class: "facts" },
          attributes.flatMap(([key, value]) => [h("dt", {}, key), h("dd", {}, String(value))]),
        )
      : "",
    (span.events || []).map((event) => h("p", { class: "small" }, `event: ${event.name}`)),
  );
}

function waterfall(trace) {
  const start = Math.min(...trace.spans.map((s) => s.start));
  const total = Math.max(1, Math.max(...trace.spans.map((s) => s.end)) - start);
  const services = [...new Set(trace.spans.map((s) => s.service))];
  return h(
    "ol",
    { class: "waterfall", "data-testid": "waterfall" },
    trace.spans.map((span) => {
      const bar = h("span", {
        class: `bar series-${services.indexOf(span.service) % 8}${span.status === "error" ? " bar--error" : ""}`,
      });
      // CSSOM, not a style attribute: the CSP allows no inline styles.
      bar.style.left = `${((span.start - start) / total) * 100}%`;
      bar.style.width = `${Math.max(0.4, ((span.end - span.start) / total) * 100)}%`;
      const more = h("div", { hidden: true }, details(span));
      const toggle = h(
        "button",
        {
          type: "button",
          class: "span-name",
          "aria-expanded": "false",
          onclick: () => {
            more.hidden = !more.hidden;
            toggle.setAttribute("aria-expanded", String(!more.hidden));
          },
        },
        span.name,
      );
      toggle.style.paddingLeft = `${0.25 + Math.min(span.depth, 24) * 0.6}rem`;
      return h(
        "li",
        {
          class: `span${span.status === "error" ? " span--error" : ""}`,
          "data-service": span.service,
          "data-sql": span.attributes?.["db.system"] ? "true" : null,
        },
        h(
          "div",
          { class: "span-row" },
          h("span", { class: "span-service" }, span.service),
          toggle,
          h("span", { class: "track", "aria-hidden": "true" }, bar),
          h("span", { class: "span-ms" }, ms(span.duration_ms)),
        ),
        more,
      );
    }),
  );
}

// SQL statements are most of a checkout's spans: hidden until asked for.
function sqlToggle(onChange) {
  const box = h("input", { id: "show-sql", type: "checkbox", onchange: () => onChange(box.checked) });
  const label = h("label", { for: "show-sql" });
  return { box, label, element: h("div", { class: "field inline" }, box, label) };
}

function summaryLine(summary) {
  return (
    `${summary.root_service}: ${summary.root} · ${dateTime(summary.start)} · ` +
    `${ms(summary.duration_ms)} · ${summary.spans} spans · ${summary.services.length} ` +
    `services · ${summary.errors} errors`
  );
}

// Each process writes its spans about once a second, so the spans of a trace that just
// happened arrive over a few seconds: a young trace is asked for again until it is a minute
// old, and redrawn when spans were added (choices made on the page are kept).
const SETTLED_MS = 60_000;

export async function render({ view, params, signal }) {
  const [id] = params;
  setTitle(`Trace ${shortId(id)}`);
  let trace = await api(`/api/v1/console/traces/${id}`, { signal });
  const line = h("p", { class: "summary", "data-testid": "trace-summary" });
  const holder = h("div");
  let showSql = false;
  const toggle = sqlToggle((checked) => {
    showSql = checked;
    holder.firstChild?.classList.toggle("waterfall--no-sql", !showSql);
  });
  const draw = () => {
    const list = waterfall(trace);
    list.classList.toggle("waterfall--no-sql", !showSql);
    holder.replaceChildren(list);
    line.textContent = summaryLine(trace.summary);
    const sql = trace.spans.filter((s) => s.attributes?.["db.system"]).length;
    toggle.label.textContent = `Show the SQL statements (${sql})`;
  };
  draw();
  view.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/traces" }, "Traces")),
    h("h1", {}, `Trace ${shortId(id)}`),
    line,
    h("p", { class: "muted small" }, `Trace id ${id}. Choose a span for its attributes.`),
    toggle.element,
    holder,
  );
  (async () => {
    while (!signal.aborted && Date.now() - trace.summary.start / 1e6 < SETTLED_MS) {
      await pause(2, signal);
      const again = await api(`/api/v1/console/traces/${id}`, { signal }).catch(() => null);
      if (again && again.spans.length !== trace.spans.length && !holder.contains(document.activeElement)) {
        trace = again;
        draw();
      }
    }
  })();
}
