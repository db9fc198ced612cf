// The confirmation step in front of every action that hurts (kill an instance, make the psp
// fail, replay or drop a dead letter): a button that opens a short question in place, whose
// "yes" button says exactly what will happen and whose "no" puts things back.
//
//   confirmable({ label: "Kill orders-1…", question: "…?", yes: "Yes, kill orders-1",
//                 no: "Keep it running", act: async () => …, done: (result) => "Killed." })
//
// `question` and `yes` may be functions, asked when the question opens (what a form
// around the button says then). What happened is said in `outcome`, a live region: the
// action's own, or one shared by several actions (made with outcomeRegion() and placed
// on the page by the caller).

import { alertBox, h } from "./dom.js";

export function outcomeRegion() {
  return h("div", { class: "outcome", role: "status" });
}

export function confirmable({
  label,
  question,
  yes,
  no = "Cancel",
  act,
  done,
  tone = "danger",
  outcome: shared = null, // one region for several actions: one message, the latest
}) {
  const outcome = shared || outcomeRegion();
  const ask = h("button", { type: "button", class: "button button--secondary" }, label);
  const yesButton = h("button", { type: "button", class: `button button--${tone}` });
  const noButton = h("button", { type: "button", class: "button button--secondary" }, no);
  const words = h("p");
  const box = h(
    "div",
    { class: "confirm", hidden: true, role: "group", "aria-label": label.replace(/…$/, "") },
    words,
    h("div", { class: "actions" }, yesButton, noButton),
  );
  const say = (value) => (typeof value === "function" ? value() : value);
  ask.addEventListener("click", () => {
    words.textContent = say(question);
    yesButton.textContent = say(yes);
    ask.hidden = true;
    box.hidden = false;
    outcome.replaceChildren();
    noButton.focus(); // the safe choice has the focus: Enter does not destroy anything
  });
  noButton.addEventListener("click", () => {
    box.hidden = true;
    ask.hidden = false;
    ask.focus();
  });
  yesButton.addEventListener("click", async () => {
    yesButton.disabled = true;
    noButton.disabled = true;
    try {
      const result = await act();
      const message = done(result);
      outcome.replaceChildren(h("p", { class: "notice notice--ok" }, message)); // a live region
    } catch (error) {
      outcome.replaceChildren(alertBox(error.message || "That didn't work."));
    } finally {
      yesButton.disabled = false;
      noButton.disabled = false;
      box.hidden = true;
      ask.hidden = false;
    }
  });
  return h("div", { class: "confirmable" }, ask, box, shared ? "" : outcome);
}
