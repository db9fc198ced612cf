// Key metrics (#/metrics), as charts: per service the request rate, the server-error rate
// and the p99 latency, and the checkouts per second. The gateway scrapes every instance's
// /metrics every few seconds while the console is in use and keeps the last 15 minutes; a
// point is the change between two scrapes (gateway/console/history.py).

import { lineChart } from "../chart.js";
import { h } from "../dom.js";
import { number } from "../format.js";
import { follow } from "../live.js";
import { setTitle } from "../router.js";
import { api } from "../session.js";

function perService(data, key) {
  return Object.entries(data.services).map(([name, series]) => ({ name, values: series[key] }));
}

export async function render({ view, signal }) {
  setTitle("Metrics");
  const region = h("div");
  view.append(
    h("h1", {}, "Metrics"),
    h(
      "p",
      { class: "muted" },
      "From every instance's /metrics, scraped by the gateway while the console is open. " +
        "Probes, scrapes and the console's own requests are left out.",
    ),
    region,
  );
  await follow(region, signal, {
    every: 5,
    load: () => api("/api/v1/console/metrics?minutes=15", { signal }),
    draw: (data) => {
      const times = data.times.map((t) => t * 1000);
      return h(
        "div",
        { class: "charts" },
        lineChart({
          id: "chart-rate",
          title: "Requests per second",
          unit: "req/s",
          times,
          series: perService(data, "rate"),
        }),
        lineChart({
          id: "chart-errors",
          title: "Server errors (5xx) per second",
          unit: "errors/s",
          times,
          series: perService(data, "errors"),
        }),
        lineChart({
          id: "chart-p99",
          title: "p99 latency",
          unit: "ms",
          times,
          series: perService(data, "p99_ms"),
        }),
        lineChart({
          id: "chart-orders",
          title: "Checkouts per second",
          unit: "orders/s",
          times,
          series: [
            { name: "placed", values: data.checkouts.started },
            { name: "completed", values: data.checkouts.completed },
            { name: "compensated", values: data.checkouts.compensated },
          ],
          format: number,
        }),
      );
    },
  });
}
