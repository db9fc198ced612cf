// Signing in: shown in place of any page until an operator (an admin) is signed in; the
// page asked for follows (app.js redraws it when the session changes).

import { alertBox, h } from "../dom.js";
import { setTitle } from "../router.js";
import { signIn } from "../session.js";

function field(name, label, type, autocomplete) {
  const input = h("input", { id: `signin-${name}`, name, type, autocomplete, required: true });
  return { input, element: h("div", { class: "field" }, h("label", { for: input.id }, label), input) };
}

export async function render({ view }) {
  setTitle("Sign in");
  const email = field("email", "Email address", "email", "username");
  const password = field("password", "Password", "password", "current-password");
  const summary = h("div");
  const button = h("button", { type: "submit", class: "button button--primary" }, "Sign in");
  const form = h(
    "form",
    {
      class: "form signin",
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        summary.replaceChildren();
        if (!email.input.value.trim() || !password.input.value) {
          summary.replaceChildren(alertBox("Fill in the email address and the password."));
          return;
        }
        button.disabled = true;
        try {
          await signIn(email.input.value.trim(), password.input.value);
        } catch (error) {
          summary.replaceChildren(
            alertBox(
              error.status === 401
                ? "That email address and password don't match an account."
                : error.message,
            ),
          );
          email.input.focus();
        } finally {
          button.disabled = false;
        }
      },
    },
    summary,
    email.element,
    password.element,
    button,
  );
  view.append(
    h("h1", {}, "Sign in to the console"),
    h(
      "p",
      { class: "muted" },
      "The operations console is for admins. On a platform started with mercato up, the " +
        "admin is admin@mercato.local; the password is in <data dir>/secrets/admin_password.",
    ),
    form,
  );
}
