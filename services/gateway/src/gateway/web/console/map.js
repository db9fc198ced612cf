// The service map: a box per service (green when every instance is ready, amber when some
// are, red when none are or none is registered) and an arrow per caller → callee. Calls
// (HTTP, gRPC) are solid, messages dashed and curved (so a reply's arrow does not hide its
// command's); an arrow the traces have not shown yet, only the design, is drawn faint.

import { svg } from "./dom.js";

const WIDTH = 920;
const HEIGHT = 470;
const BOX = { w: 150, h: 58 };
// Where the known services sit: the edge on the left, the provider outside on the right,
// placed so that the gateway's calls pass between the boxes of the middle column.
const PLACES = {
  gateway: [95, 215],
  identity: [340, 35],
  catalog: [340, 130],
  orders: [340, 300],
  notifications: [340, 420],
  inventory: [600, 150],
  payments: [600, 290],
  psp: [840, 290],
};

function place(name, index) {
  return PLACES[name] || [95 + (index % 4) * 240, HEIGHT - 20];
}

// Where the line from a box's centre towards `to` leaves the box.
function border([x, y], [tx, ty], pad = 4) {
  const dx = tx - x;
  const dy = ty - y;
  const scale = Math.min(
    dx ? (BOX.w / 2 + pad) / Math.abs(dx) : Infinity,
    dy ? (BOX.h / 2 + pad) / Math.abs(dy) : Infinity,
  );
  return [x + dx * scale, y + dy * scale];
}

function tone(service) {
  const total = service.instances.length;
  if (!total || !service.ready) return "bad";
  return service.ready === total ? "ok" : "warn";
}

function arrow(edge, at) {
  const from = at[edge.from];
  const to = at[edge.to];
  if (!from || !to) return null;
  const [x1, y1] = border(from, to);
  const [x2, y2] = border(to, from, 8);
  const kind = `edge edge--${edge.kind}${edge.seen ? "" : " edge--designed"}`;
  const label = `${edge.from} → ${edge.to}: ${edge.kind === "call" ? "calls" : "messages"}, ${
    edge.seen ? `seen ${edge.seen} times in traces` : "by design, not seen in traces yet"
  }`;
  let shape;
  if (edge.kind === "message") {
    // Bend to the right of the direction of travel, so A→B and B→A curve apart; between
    // boxes of one column, far enough to pass beside the boxes in between.
    const bend = Math.abs(x2 - x1) < 10 ? 0.72 : 0.18;
    const mx = (x1 + x2) / 2 - (y2 - y1) * bend;
    const my = (y1 + y2) / 2 + (x2 - x1) * bend;
    shape = svg("path", { d: `M${x1},${y1} Q${mx},${my} ${x2},${y2}`, class: kind });
  } else {
    shape = svg("line", { x1, y1, x2, y2, class: kind });
  }
  shape.setAttribute("marker-end", `url(#head-${edge.kind})`);
  return svg("g", { "data-edge": `${edge.from}>${edge.to}>${edge.kind}` }, svg("title", {}, label), shape);
}

function box(service, [x, y]) {
  const total = service.instances.length;
  return svg(
    "g",
    { class: `node node--${tone(service)}`, "data-service": service.name },
    svg("title", {}, `${service.name}: ${service.ready} of ${total} instances ready`),
    svg("rect", { x: x - BOX.w / 2, y: y - BOX.h / 2, width: BOX.w, height: BOX.h, rx: 8 }),
    svg("text", { x, y: y - 5, class: "node-name", "text-anchor": "middle" }, service.name),
    svg(
      "text",
      { x, y: y + 15, class: "node-state", "text-anchor": "middle" },
      total ? `${service.ready}/${total} ready` : "not registered",
    ),
  );
}

export function serviceMap(services, edges) {
  const at = {};
  services.forEach((service, index) => {
    at[service.name] = place(service.name, index);
  });
  const heads = ["call", "message"].map((kind) =>
    svg(
      "marker",
      {
        id: `head-${kind}`,
        viewBox: "0 0 10 10",
        refX: 9,
        refY: 5,
        markerWidth: 7,
        markerHeight: 7,
        orient: "auto-start-reverse",
      },
      svg("path", { d: "M0,0 L10,5 L0,10 z", class: `head head--${kind}` }),
    ),
  );
  return svg(
    "svg",
    {
      class: "service-map",
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      role: "img",
      "aria-label": `Service map: ${services.length} services and ${edges.length} connections; the table below lists every instance.`,
      "data-testid": "service-map",
    },
    svg("defs", {}, heads),
    edges.map((edge) => arrow(edge, at)),
    services.map((service) => box(service, at[service.name])),
  );
}
