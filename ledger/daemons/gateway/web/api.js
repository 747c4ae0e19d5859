// The REST API as the view uses it: the account's session (tokens kept in localStorage so
// that a shared link opens signed in in a new tab), refreshed before it expires and once
// more on a 401, and serialised across tabs: refresh tokens rotate, and two tabs presenting
// the same one would look like a stolen token and end the session.

const STORE = "ledger.session";
const SKEW_MS = 30_000;

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
  }
}

export class SignedOut extends Error {}

function load() {
  try { return JSON.parse(localStorage.getItem(STORE)) || null; } catch { return null; }
}

function save(session) {
  if (session) localStorage.setItem(STORE, JSON.stringify(session));
  else localStorage.removeItem(STORE);
}

function fromTokens(body) {
  return {
    access: body.access_token,
    accessExpires: Date.parse(body.access_expires_at),
    refresh: body.refresh_token,
    account: body.account,
  };
}

export function account() {
  const session = load();
  return session ? session.account : null;
}

async function post(path, body) {
  return fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    credentials: "omit",
  });
}

async function detailOf(response) {
  try { return (await response.json()).detail; } catch { return response.statusText; }
}

export async function signIn(email, password) {
  const response = await post("/api/v1/accounts/login", { email, password });
  if (!response.ok) throw new ApiError(response.status, await detailOf(response));
  save(fromTokens(await response.json()));
}

export async function signOut() {
  const session = load();
  save(null);
  if (session) {
    try { await post("/api/v1/accounts/logout", { refresh_token: session.refresh }); } catch { /* offline: the token expires by itself */ }
  }
}

function withLock(fn) {
  if (navigator.locks) return navigator.locks.request("ledger-refresh", fn);
  return fn();
}

let refreshing = null;

// A fresh access token: another tab may already have rotated the session, so read it again
// under the lock before spending the refresh token.
function refresh(stale) {
  if (!refreshing) {
    refreshing = withLock(async () => {
      const current = load();
      if (!current) throw new SignedOut();
      if (current.access !== stale && current.accessExpires - SKEW_MS > Date.now()) return current;
      const response = await post("/api/v1/accounts/refresh", { refresh_token: current.refresh });
      if (response.status === 401) { save(null); throw new SignedOut(); }
      if (!response.ok) throw new ApiError(response.status, await detailOf(response));
      const next = fromTokens(await response.json());
      save(next);
      return next;
    }).finally(() => { refreshing = null; });
  }
  return refreshing;
}

async function accessToken() {
  let session = load();
  if (!session) throw new SignedOut();
  if (session.accessExpires - SKEW_MS <= Date.now()) session = await refresh(session.access);
  return session.access;
}

export function url(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") query.set(name, value);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

// One call: JSON in and out; a 401 refreshes once; SignedOut when the session is gone.
export async function api(path, { method = "GET", body, params } = {}) {
  const target = url(path, params);
  for (let attempt = 0; ; attempt++) {
    const token = await accessToken();
    const headers = { Authorization: `Bearer ${token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(target, {
      method, headers, credentials: "omit",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401 && attempt === 0) { await refresh(token); continue; }
    if (response.status === 401) { save(null); throw new SignedOut(); }
    if (!response.ok) throw new ApiError(response.status, await detailOf(response));
    return response.status === 204 ? null : response.json();
  }
}
