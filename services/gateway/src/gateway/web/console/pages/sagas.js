// Sagas (#/sagas?status=…): the checkout sagas orders runs, newest first, filtered by state.

import { h, pill, table } from "../dom.js";
import { dateTime, duration, shortId } from "../format.js";
import { follow } from "../live.js";
import { go, setTitle } from "../router.js";
import { api } from "../session.js";

export const STATUS_TONES = {
  RUNNING: "info",
  COMPENSATING: "warn",
  COMPLETED: "ok",
  COMPENSATED: "bad",
};

function took(saga) {
  if (!saga.finished_at) return h("span", { class: "muted" }, "running");
  return duration((Date.parse(saga.finished_at) - Date.parse(saga.created_at)) / 1000);
}

function rows(items) {
  return items.map((saga) => [
    h("a", { href: `#/sagas/${saga.id}` }, shortId(saga.id)),
    saga.correlation_id,
    pill(saga.status, STATUS_TONES[saga.status] || "info"),
    saga.step || h("span", { class: "muted" }, "–"),
    saga.failure ? saga.failure.reason : "",
    dateTime(saga.created_at),
    took(saga),
  ]);
}

function filter(status) {
  const select = h(
    "select",
    {
      id: "saga-status",
      onchange: () => go(select.value ? `/sagas?status=${select.value}` : "/sagas"),
    },
    [["", "Any state"], ...Object.keys(STATUS_TONES).map((s) => [s, s])].map(([value, text]) =>
      h("option", { value, selected: value === status }, text),
    ),
  );
  return h("div", { class: "field inline" }, h("label", { for: "saga-status" }, "State"), select);
}

export async function render({ view, query, signal }) {
  const status = query.get("status") || "";
  setTitle(status ? `Sagas ${status}` : "Sagas");
  const region = h("div");
  const older = h("div");
  view.append(
    h("h1", {}, "Sagas"),
    h(
      "p",
      { class: "muted" },
      "Checkout sagas, as the orders service stores them: one per order, newest first.",
    ),
    filter(status),
    region,
    older,
  );
  const page = (cursor) =>
    api(`/api/v1/console/sagas?limit=25&status=${status}${cursor ? `&cursor=${cursor}` : ""}`, {
      signal,
    });
  const heads = ["Saga", "Order", "State", "Waiting on", "Failure", "Started", "Took"];
  let next = null;
  const more = (cursor) => {
    older.replaceChildren(
      cursor
        ? h(
            "button",
            {
              type: "button",
              class: "button button--secondary",
              onclick: async () => {
                const found = await page(cursor);
                older.before(table("Older sagas", heads, rows(found.items)));
                more(found.next_cursor);
              },
            },
            "Older sagas",
          )
        : "",
    );
  };
  await follow(region, signal, {
    every: 5,
    load: () => page(null),
    draw: (data) => {
      if (next === null) more(data.next_cursor);
      next = data.next_cursor;
      return table("Sagas, newest first", heads, rows(data.items), {
        empty: status ? `No ${status} sagas.` : "No sagas yet: place an order.",
      });
    },
  });
}
