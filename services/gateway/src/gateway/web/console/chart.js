// Line charts drawn as inline SVG: no chart library, a few dozen lines.
//
// lineChart({ title, unit, times, series: [{ name, values }], format }) returns a <figure>:
// the title, the SVG (one polyline per series on a shared time axis, gaps where a value is
// null, three horizontal grid lines with their values) and a legend that also says each
// series' latest value in words, which is what a screen reader gets too.

import { h, svg } from "./dom.js";
import { number, time } from "./format.js";

const WIDTH = 640;
const HEIGHT = 220;
const PAD = { left: 52, right: 12, top: 12, bottom: 28 };

// A "nice" ceiling for the axis: 1, 2 or 5 times a power of ten.
function ceiling(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((f) => f * power).find((nice) => nice >= value);
}

// Consecutive non-null points as "x,y" strings: one polyline per run, gaps left empty.
function runs(points) {
  const out = [];
  let current = [];
  for (const point of points) {
    if (point === null) {
      if (current.length) out.push(current);
      current = [];
    } else current.push(point);
  }
  if (current.length) out.push(current);
  return out;
}

export function lineChart({ title, unit, times, series, format = number, id }) {
  const top = ceiling(Math.max(0, ...series.flatMap((s) => s.values.filter((v) => v !== null))));
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const first = times[0];
  const span = Math.max(1, times[times.length - 1] - first);
  const x = (t) => PAD.left + ((t - first) / span) * plotW;
  const y = (v) => PAD.top + plotH - (v / top) * plotH;

  const grid = [0, 0.5, 1].map((f) =>
    svg(
      "g",
      { class: "grid" },
      svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(top * f), y2: y(top * f) }),
      svg(
        "text",
        { x: PAD.left - 6, y: y(top * f) + 4, "text-anchor": "end" },
        `${format(top * f)}`,
      ),
    ),
  );
  const axis = times.length
    ? [
        svg("text", { class: "axis", x: PAD.left, y: HEIGHT - 8 }, time(first)),
        svg(
          "text",
          { class: "axis", x: WIDTH - PAD.right, y: HEIGHT - 8, "text-anchor": "end" },
          time(times[times.length - 1]),
        ),
      ]
    : [];
  const lines = series.map((s, index) =>
    runs(s.values.map((v, i) => (v === null || v === undefined ? null : `${x(times[i])},${y(v)}`)))
      .filter((run) => run.length)
      .map((run) =>
        run.length === 1
          ? svg("circle", {
              class: `series series-${index}`,
              cx: run[0].split(",")[0],
              cy: run[0].split(",")[1],
              r: 2.5,
            })
          : svg("polyline", { class: `series series-${index}`, points: run.join(" ") }),
      ),
  );
  const latest = (s) => {
    const found = [...s.values].reverse().find((v) => v !== null && v !== undefined);
    return found === undefined ? "no data" : `${format(found)} ${unit}`;
  };
  const titleId = `${id}-title`;
  return h(
    "figure",
    { class: "chart", "data-testid": id },
    h("figcaption", { id: titleId }, title, h("span", { class: "muted small" }, ` (${unit})`)),
    times.length < 2
      ? h("p", { class: "muted chart-empty" }, "Collecting samples… a rate needs two.")
      : svg(
          "svg",
          {
            viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
            role: "img",
            "aria-labelledby": titleId,
            preserveAspectRatio: "none",
          },
          grid,
          axis,
          lines,
        ),
    h(
      "ul",
      { class: "legend" },
      series.map((s, index) =>
        h(
          "li",
          {},
          h("span", { class: `swatch series-${index}`, "aria-hidden": "true" }),
          `${s.name}: `,
          h("strong", {}, latest(s)),
        ),
      ),
    ),
  );
}
