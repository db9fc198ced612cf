// The services (#/): the map of who calls whom, and every instance the registry lists with
// its readiness (its own /readyz, asked just now), version, uptime and heartbeat; with
// `mercato up`, also its pid and how often the supervisor restarted it.

import { h, pill, table } from "../dom.js";
import { duration, plural } from "../format.js";
import { follow } from "../live.js";
import { serviceMap } from "../map.js";
import { setTitle } from "../router.js";
import { api } from "../session.js";

function readiness(instance) {
  if (instance.ready) return pill("ready", "ok");
  const failing = Object.entries(instance.checks || {})
    .filter(([, state]) => state !== "ok")
    .map(([name]) => name);
  const why = instance.error || "not ready";
  return h(
    "span",
    {},
    pill("not ready", "bad"),
    " ",
    h("span", { class: "small" }, failing.length ? `${why}: ${failing.join(", ")}` : why),
  );
}

function instanceRows(services, self) {
  return services.flatMap((service) =>
    service.instances.length
      ? service.instances.map((i) => [
          service.name,
          h("span", {}, i.instance_id, i.instance_id === self ? h("span", { class: "muted" }, " (this gateway)") : ""),
          readiness(i),
          i.version,
          duration(i.uptime_seconds),
          `${duration(i.heartbeat_age_seconds)} ago`,
          i.pid ?? "–",
          i.restarts ?? "–",
        ])
      : [[service.name, h("span", { class: "muted" }, "no instance registered"), pill("down", "bad"), "", "", "", "", ""]],
  );
}

// Whether the operator opened the list: it stays open when the page redraws every 3 s.
let edgesOpen = false;

function edgeList(edges) {
  const seen = edges.filter((e) => e.seen);
  return h(
    "details",
    {
      class: "edges",
      open: edgesOpen,
      ontoggle: (event) => {
        edgesOpen = event.target.open;
      },
    },
    h("summary", {}, `Calls and messages as a list (${seen.length} seen in traces, ${edges.length} in all)`),
    h(
      "ul",
      { "data-testid": "edge-list" },
      edges.map((e) =>
        h(
          "li",
          {},
          `${e.from} → ${e.to} `,
          h("span", { class: "muted" }, e.kind === "call" ? "(call)" : "(message)"),
          e.seen ? ` seen ${e.seen}×` : h("span", { class: "muted" }, " by design"),
        ),
      ),
    ),
  );
}

export async function render({ view, signal }) {
  setTitle("Services");
  const region = h("div");
  view.append(h("h1", {}, "Services"), region);
  await follow(region, signal, {
    every: 3,
    load: () => api("/api/v1/console/services", { signal }),
    draw: (data) => {
      const instances = data.services.flatMap((s) => s.instances);
      const ready = instances.filter((i) => i.ready).length;
      return [
        h(
          "p",
          { class: "summary", "data-testid": "services-summary" },
          `${plural(data.services.length, "service")}, ${ready} of ${plural(instances.length, "instance")} ready.`,
          data.supervisor.available ? "" : " No supervisor: instances are managed elsewhere.",
        ),
        h(
          "figure",
          { class: "map-figure" },
          serviceMap(data.services, data.edges),
          h(
            "figcaption",
            { class: "muted small legend-line" },
            h("span", { class: "key key--call", "aria-hidden": "true" }),
            " call (HTTP, gRPC)  ",
            h("span", { class: "key key--message", "aria-hidden": "true" }),
            " message  ·  faint: by design, not seen in recent traces",
          ),
        ),
        edgeList(data.edges),
        h("h2", {}, "Instances"),
        table(
          "Every registered instance",
          ["Service", "Instance", "Ready", "Version", "Up for", "Heartbeat", "PID", "Restarts"],
          instanceRows(data.services, data.this_instance),
        ),
      ];
    },
  });
}
