// Signing in (#/signin), creating an account (#/register) and the account page (#/account).
// Both forms come back to where the shopper was (?next=/cart) when they succeed.

import { alertBox, announce, h } from "../dom.js";
import { date } from "../format.js";
import { go, safeNext, setTitle } from "../router.js";
import { currentUser, register, signIn, signOut } from "../session.js";

const PASSWORD_HINT = "At least 12 characters. A few words you'll remember work well.";

// A labelled input with room for its own error message, linked for screen readers.
function field({ name, label, type = "text", autocomplete, hint }) {
  const id = `field-${name}`;
  const error = h("p", { class: "field-error", id: `${id}-error`, hidden: true });
  const hintText = hint ? h("p", { class: "field-hint", id: `${id}-hint` }, hint) : null;
  const input = h("input", {
    id,
    name,
    type,
    autocomplete,
    required: true,
    "aria-describedby": [hintText && `${id}-hint`, `${id}-error`].filter(Boolean).join(" "),
  });
  return {
    name,
    input,
    element: h("div", { class: "field" }, h("label", { for: id }, label), hintText, input, error),
    setError(message) {
      error.textContent = message || "";
      error.hidden = !message;
      if (message) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    },
  };
}

function accountForm({ fields, submitLabel, busyLabel, onSubmit }) {
  const summary = h("div");
  const button = h("button", { type: "submit", class: "button button--primary" }, submitLabel);
  const form = h(
    "form",
    {
      class: "form",
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        summary.replaceChildren();
        fields.forEach((f) => f.setError(""));
        const missing = fields.filter((f) => !f.input.value.trim());
        if (missing.length) {
          missing.forEach((f) => f.setError("Please fill this in."));
          missing[0].input.focus();
          return;
        }
        button.disabled = true;
        button.textContent = busyLabel;
        try {
          await onSubmit(Object.fromEntries(fields.map((f) => [f.name, f.input.value])));
        } catch (error) {
          const wrong = fields.filter((f) => error.fields?.[f.name]);
          wrong.forEach((f) => f.setError(error.fields[f.name]));
          summary.replaceChildren(
            alertBox(error.message || "Something went wrong. Please try again."),
          );
          (wrong[0]?.input || fields[0].input).focus();
        } finally {
          button.disabled = false;
          button.textContent = submitLabel;
        }
      },
    },
    summary,
    fields.map((f) => f.element),
    button,
  );
  return form;
}

export async function renderSignIn({ view, query }) {
  setTitle("Sign in");
  const next = safeNext(query);
  if (currentUser()) {
    go(next);
    return;
  }
  const email = field({
    name: "email",
    label: "Email address",
    type: "email",
    autocomplete: "email",
  });
  const password = field({
    name: "password",
    label: "Password",
    type: "password",
    autocomplete: "current-password",
  });
  view.append(
    h("h1", {}, "Sign in"),
    accountForm({
      fields: [email, password],
      submitLabel: "Sign in",
      busyLabel: "Signing in…",
      onSubmit: async (values) => {
        const user = await signIn(values.email.trim(), values.password);
        announce(`Signed in as ${user.name}.`);
        go(next);
      },
    }),
    h(
      "p",
      {},
      "New to Mercato? ",
      h("a", { href: `#/register?next=${encodeURIComponent(next)}` }, "Create an account"),
      ".",
    ),
  );
}

export async function renderRegister({ view, query }) {
  setTitle("Create an account");
  const next = safeNext(query);
  const name = field({ name: "name", label: "Your name", autocomplete: "name" });
  const email = field({
    name: "email",
    label: "Email address",
    type: "email",
    autocomplete: "email",
  });
  const password = field({
    name: "password",
    label: "Password",
    type: "password",
    autocomplete: "new-password",
    hint: PASSWORD_HINT,
  });
  view.append(
    h("h1", {}, "Create an account"),
    accountForm({
      fields: [name, email, password],
      submitLabel: "Create account",
      busyLabel: "Creating your account…",
      onSubmit: async (values) => {
        const user = await register(values.name.trim(), values.email.trim(), values.password);
        announce(`Welcome, ${user.name}. You're signed in.`);
        go(next);
      },
    }),
    h(
      "p",
      {},
      "Have an account? ",
      h("a", { href: `#/signin?next=${encodeURIComponent(next)}` }, "Sign in"),
      ".",
    ),
  );
}

export async function renderAccount({ view }) {
  setTitle("Your account");
  const user = currentUser();
  view.append(h("h1", {}, "Your account"));
  if (!user) {
    view.append(
      h(
        "p",
        {},
        "You're signed out. ",
        h("a", { href: "#/signin?next=%2Faccount" }, "Sign in"),
        ".",
      ),
    );
    return;
  }
  view.append(
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Name"),
      h("dd", {}, user.name),
      h("dt", {}, "Email address"),
      h("dd", {}, user.email),
      h("dt", {}, "Member since"),
      h("dd", {}, date(user.created_at)),
    ),
    h(
      "p",
      {},
      h("a", { href: "#/orders" }, "Your orders"),
      " · ",
      h("a", { href: "#/notifications" }, "Notifications"),
    ),
    h(
      "button",
      {
        type: "button",
        class: "button button--secondary",
        onclick: async () => {
          const revoked = signOut(); // signed out here at once; the server is told meanwhile
          go("/");
          announce("You're signed out.");
          await revoked;
        },
      },
      "Sign out",
    ),
  );
}
