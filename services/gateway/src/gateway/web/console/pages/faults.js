// Fault injection for demos (#/faults): the psp's knobs (latency, errors, "timeout after
// charging"), set on every psp instance, and killing a service instance through the
// supervisor of `mercato up`, which restarts it. Both ask for a confirmation first.

import { confirmable, outcomeRegion } from "../confirm.js";
import { alertBox, h, notice } from "../dom.js";
import { plural } from "../format.js";
import { pause } from "../live.js";
import { setTitle } from "../router.js";
import { api } from "../session.js";

function numberField(id, label, value, { min, max, step, hint }) {
  const input = h("input", {
    id,
    type: "number",
    min,
    max,
    step,
    value: String(value),
    "aria-describedby": `${id}-hint`,
  });
  return {
    input,
    element: h(
      "div",
      { class: "field" },
      h("label", { for: id }, label),
      h("p", { class: "field-hint", id: `${id}-hint` }, hint),
      input,
    ),
  };
}

function describe(knobs) {
  if (!knobs) return "unknown";
  const bad = [];
  if (knobs.latency_ms) bad.push(`${knobs.latency_ms} ms added to every call`);
  if (knobs.error_rate) bad.push(`${Math.round(knobs.error_rate * 100)}% of calls fail`);
  if (knobs.timeout_after_charge_rate)
    bad.push(
      `${Math.round(knobs.timeout_after_charge_rate * 100)}% of charges never answer ` +
        `(held ${knobs.timeout_seconds} s)`,
    );
  return bad.length ? bad.join("; ") : "healthy: no faults";
}

async function pspSection(section, signal) {
  const current = h("p", { "data-testid": "psp-knobs" });
  const show = (found) => {
    current.replaceChildren(
      "Now: ",
      h("strong", {}, describe(found.knobs)),
      ` (${plural(found.instances.length, "psp instance")})`,
    );
    return found.knobs;
  };
  let knobs;
  try {
    knobs = show(await api("/api/v1/console/faults/psp", { signal }));
  } catch (error) {
    if (error.name === "AbortError") return;
    section.append(h("h2", {}, "Payment provider (psp)"), alertBox(error.message));
    return;
  }
  const latency = numberField("psp-latency", "Added latency (ms)", knobs.latency_ms, {
    min: 0, max: 60000, step: 50, hint: "Every psp call waits this long first.",
  });  // prettier-ignore
  const errors = numberField("psp-errors", "Failing calls (%)", Math.round(knobs.error_rate * 100), {
    min: 0, max: 100, step: 5, hint: "This share of calls answers 500 or 503 without doing anything.",
  });  // prettier-ignore
  const timeouts = numberField(
    "psp-timeouts",
    "Charges that never answer (%)",
    Math.round(knobs.timeout_after_charge_rate * 100),
    { min: 0, max: 100, step: 5, hint: "The charge happens, the answer is held back: the caller must find out." },
  );
  const wanted = () => ({
    latency_ms: Math.max(0, Math.round(Number(latency.input.value) || 0)),
    error_rate: Math.min(1, Math.max(0, (Number(errors.input.value) || 0) / 100)),
    timeout_after_charge_rate: Math.min(1, Math.max(0, (Number(timeouts.input.value) || 0) / 100)),
    timeout_seconds: knobs.timeout_seconds,
  });
  const put = async (body) => {
    knobs = show(await api("/api/v1/console/faults/psp", { method: "PUT", body }));
    return knobs;
  };
  const outcome = outcomeRegion();
  const actions = h(
    "div",
    { class: "actions" },
    confirmable({
      label: "Apply to the psp…",
      question: () =>
        `Make the psp behave like this: ${describe(wanted())}? Every checkout is affected.`,
      yes: "Yes, apply",
      no: "Don't change anything",
      act: () => put(wanted()),
      done: (now) => `The psp is now: ${describe(now)}.`,
      outcome,
    }),
    confirmable({
      label: "Make the psp healthy…",
      question: "Turn every psp fault off?",
      yes: "Yes, turn faults off",
      no: "Leave it as it is",
      tone: "primary",
      act: async () => {
        const now = await put({ latency_ms: 0, error_rate: 0, timeout_after_charge_rate: 0 });
        latency.input.value = "0";
        errors.input.value = "0";
        timeouts.input.value = "0";
        return now;
      },
      done: (now) => `The psp is now: ${describe(now)}.`,
      outcome,
    }),
  );
  section.append(
    h("h2", {}, "Payment provider (psp)"),
    h(
      "p",
      { class: "muted small" },
      "The knobs of the simulated provider, on every psp instance. Checkouts, captures and " +
        "refunds all go through it: watch the sagas, breakers and p99 while it misbehaves.",
    ),
    current,
    h("div", { class: "knobs" }, latency.element, errors.element, timeouts.element),
    actions,
    outcome,
  );
}

// After a kill: ask for the instance until it is back, ready, with a new start time.
async function watchComeBack(id, before, out, signal) {
  for (let i = 0; i < 120 && !signal.aborted; i += 1) {
    await pause(1, signal);
    let data;
    try {
      data = await api("/api/v1/console/services", { signal });
    } catch {
      continue; // the gateway itself may be the one restarting
    }
    const found = data.services.flatMap((s) => s.instances).find((x) => x.instance_id === id);
    if (!found || !found.ready || found.started_at === before) {
      out.replaceChildren(notice(`${id}: ${found?.ready ? "still the old process" : "not ready"}… waiting for it to come back.`));
      continue;
    }
    out.replaceChildren(
      h(
        "p",
        { class: "notice notice--ok", "data-testid": "back" },
        `${id} is back and ready`,
        found.restarts !== null ? ` (restarted ${plural(found.restarts, "time")} by the supervisor).` : ".",
      ),
    );
    return;
  }
}

async function killSection(section, signal) {
  const data = await api("/api/v1/console/services", { signal });
  section.append(h("h2", {}, "Kill an instance"));
  if (!data.supervisor.available) {
    section.append(
      notice(
        "Unavailable here: no supervisor runs these processes (on Kubernetes, delete a pod " +
          "and watch the Deployment bring it back).",
        "warn",
      ),
    );
    return;
  }
  const instances = data.services.flatMap((s) => s.instances);
  const select = h(
    "select",
    { id: "kill-instance" },
    instances.map((i) =>
      h(
        "option",
        { value: i.instance_id, selected: i.instance_id.startsWith("notifications") },
        `${i.instance_id}${i.instance_id === data.this_instance ? " (this gateway)" : ""}`,
      ),
    ),
  );
  const out = h("div", { role: "status", "data-testid": "kill-progress" });
  const chosen = () => instances.find((i) => i.instance_id === select.value);
  section.append(
    h(
      "p",
      { class: "muted small" },
      "Sends SIGKILL to the process, as a crash would. The supervisor of mercato up notices " +
        "and starts it again with backoff; meanwhile the others work around it (breakers, " +
        "retries on other instances, the broker keeping its messages).",
    ),
    h("div", { class: "field inline" }, h("label", { for: "kill-instance" }, "Instance"), select),
    confirmable({
      label: "Kill this instance…",
      question: () =>
        `Kill ${select.value} with SIGKILL? Requests to it fail until the supervisor has restarted it.` +
        (select.value === data.this_instance ? " It serves this console: the page will lose it for a moment." : ""),
      yes: () => `Yes, kill ${select.value}`,
      no: "Keep it running",
      act: async () => {
        const before = chosen()?.started_at;
        const killed = await api(`/api/v1/console/instances/${encodeURIComponent(select.value)}/kill`, {
          method: "POST",
        });
        watchComeBack(killed.instance_id, before, out, signal);
        return killed;
      },
      done: (killed) => `Killed ${killed.instance_id} (pid ${killed.pid}).`,
    }),
    out,
  );
}

export async function render({ view, signal }) {
  setTitle("Fault injection");
  const psp = h("section", { "aria-label": "Payment provider faults" });
  const kill = h("section", { "aria-label": "Kill an instance" });
  view.append(
    h("h1", {}, "Fault injection"),
    h(
      "p",
      { class: "muted" },
      "For demonstrations on this platform: every change here hurts real traffic on it.",
    ),
    psp,
    kill,
  );
  await Promise.all([pspSection(psp, signal), killSection(kill, signal)]);
}
