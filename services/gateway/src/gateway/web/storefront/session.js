// Who is signed in, and the tokens that prove it.
//
// Where the tokens live, and why:
// - The access token (a JWT valid for a few minutes) is kept in this module's memory only.
//   Nothing persists it, so it is gone when the tab closes and no other page or tab can
//   read it from storage.
// - The refresh token is kept in sessionStorage, so reloading the page (or following a
//   link back to the shop) keeps you signed in. sessionStorage belongs to this tab alone
//   and is cleared when the tab closes, unlike localStorage, which stays on disk and is
//   shared by every tab. Identity rotates refresh tokens on each use and revokes the whole
//   family when an old one is replayed, so a stolen copy is worth little for long.
// - The better place against cross-site scripting would be an HttpOnly cookie set by the
//   gateway (JavaScript could not read it at all), but that turns the gateway into a
//   session holder with CSRF defences to match. Here the strict Content-Security-Policy
//   and Trusted Types (gateway/sites.py) are what keep foreign script off the page.

import { ApiError, request } from "./http.js";

const REFRESH_KEY = "mercato.refresh_token";
const EARLY = 20_000; // refresh this many ms before the access token expires

let access = null; // {token, expiresAt}
let user = null; // {id, email, name, roles, created_at}
let refreshing = null; // the refresh in flight, shared by everyone who needs it
const listeners = new Set();

export function currentUser() {
  return user;
}

// Call `listener(user)` whenever someone signs in or out; returns a function to stop.
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
  const wasSignedIn = user !== null;
  access = null;
  user = null;
  sessionStorage.removeItem(REFRESH_KEY);
  if (wasSignedIn) changed();
}

async function loadUser() {
  user = await authorized("/api/v1/users/me");
  changed();
  return user;
}

// On start: sign back in from the stored refresh token, if there is one.
export async function restore() {
  if (!sessionStorage.getItem(REFRESH_KEY)) return null;
  try {
    await refresh();
    return await loadUser();
  } catch (error) {
    if (error.status === 401) forget();
    return null;
  }
}

export async function signIn(email, password) {
  keep(await request("/api/v1/auth/token", { method: "POST", body: { email, password } }));
  return loadUser();
}

export async function register(name, email, password) {
  await request("/api/v1/auth/register", { method: "POST", body: { name, email, password } });
  return signIn(email, password);
}

export async function signOut() {
  const token = sessionStorage.getItem(REFRESH_KEY);
  forget();
  if (token) {
    // Revoke the refresh token; signed out locally whatever the answer.
    await request("/api/v1/auth/logout", { method: "POST", body: { refresh_token: token } }).catch(
      () => {},
    );
  }
}

function refresh() {
  if (!refreshing) {
    const token = sessionStorage.getItem(REFRESH_KEY);
    refreshing = (async () => {
      if (!token)
        throw new ApiError("Please sign in to continue.", { status: 401, slug: "unauthenticated" });
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

// A valid access token, refreshed first when it is about to expire.
export async function accessToken() {
  if (!access || access.expiresAt - Date.now() < EARLY) await refresh();
  return access.token;
}

// After a 401, try once more with a new access token (it may have expired in flight).
export async function withFreshToken(call) {
  try {
    return await call(await accessToken());
  } catch (error) {
    if (error.status !== 401 || error.slug === "invalid-credentials") throw error;
    access = null;
    return call(await accessToken());
  }
}

// request() as the signed-in user.
export function authorized(path, options = {}) {
  return withFreshToken((token) =>
    request(path, {
      ...options,
      headers: { ...options.headers, authorization: `Bearer ${token}` },
    }),
  );
}
