// The operator who is signed in, and the tokens that prove it.
//
// The same arrangement as the storefront's session.js (read its header for the reasons):
// the access token in memory only, the refresh token in this tab's sessionStorage (under its
// own key, so signing in to the console and to the shop in one tab do not collide). The
// console also wants the `admin` role: identity issues tokens to anyone, and the console's
// API answers 403 to everyone else, so a customer is turned away at sign-in already.

import { ApiError, request } from "./http.js";

const REFRESH_KEY = "mercato.console.refresh_token";
const EARLY = 20_000; // refresh this many ms before the access token expires

let access = null; // {token, expiresAt}
let user = null; // {id, email, name, roles}
let refreshing = null;
const listeners = new Set();

export function currentUser() {
  return user;
}

export function onSessionChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function changed() {
  for (const listener of listeners) listener(user);
}

function keep(tokens) {
  access = { token: tokens.access_token, expiresAt: Date.now() + tokens.expires_in * 1000 };
  sessionStorage.setItem(REFRESH_KEY, tokens.refresh_token);
}

function forget() {
  const was = user !== null;
  access = null;
  user = null;
  sessionStorage.removeItem(REFRESH_KEY);
  if (was) changed();
}

async function loadOperator() {
  const me = await api("/api/v1/users/me");
  if (!Array.isArray(me.roles) || !me.roles.includes("admin")) {
    await signOut();
    throw new ApiError("This account isn't an operator's: the console is for admins only.", {
      status: 403,
      slug: "forbidden",
    });
  }
  user = me;
  changed();
  return user;
}

export async function restore() {
  if (!sessionStorage.getItem(REFRESH_KEY)) return null;
  try {
    await refresh();
    return await loadOperator();
  } catch (error) {
    if (error.status === 401 || error.status === 403) forget();
    return null;
  }
}

export async function signIn(email, password) {
  keep(await request("/api/v1/auth/token", { method: "POST", body: { email, password } }));
  return loadOperator();
}

export async function signOut() {
  const token = sessionStorage.getItem(REFRESH_KEY);
  forget();
  if (token) {
    await request("/api/v1/auth/logout", { method: "POST", body: { refresh_token: token } }).catch(
      () => {},
    );
  }
}

function refresh() {
  if (!refreshing) {
    const token = sessionStorage.getItem(REFRESH_KEY);
    refreshing = (async () => {
      if (!token) throw new ApiError("Please sign in.", { status: 401, slug: "unauthenticated" });
      try {
        keep(
          await request("/api/v1/auth/refresh", { method: "POST", body: { refresh_token: token } }),
        );
      } catch (error) {
        if (error.status === 401) forget();
        throw error;
      }
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

async function accessToken() {
  if (!access || access.expiresAt - Date.now() < EARLY) await refresh();
  return access.token;
}

// request() as the signed-in operator, once more with a fresh token after a 401.
export async function api(path, options = {}) {
  const call = async () =>
    request(path, {
      ...options,
      headers: { ...options.headers, authorization: `Bearer ${await accessToken()}` },
    });
  try {
    return await call();
  } catch (error) {
    if (error.status !== 401) throw error;
    access = null;
    return call();
  }
}
