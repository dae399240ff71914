// Sign-in: OpenID Connect's authorization code flow with PKCE (S256), the same code path for
// the dev stack's identity provider (the local gateway) and Cognito's hosted UI or any other
// OIDC provider when deployed. `config.auth` names the endpoints and the client id.
//
// The access token lives in sessionStorage: it survives a reload of the tab (so Uppy can
// resume an upload) and is gone when the tab closes.

const TOKEN_KEY = 'matbakh.token';
const PENDING_KEY = 'matbakh.signin';

const b64url = (bytes) =>
  btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

function randomString(bytes = 32) {
  return b64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

export async function challengeOf(verifier) {
  return b64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
}

/** The claims of a JWT (not verified: the API does that; the app only shows who is signed in). */
export function claimsOf(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part));
  } catch {
    return null;
  }
}

function redirectUri() {
  return `${location.origin}/`;
}

/** The stored session if it has not expired: {token, sub}. */
/** OAuth's error codes (RFC 6749, 4.1.2.1) as this page says them. */
const SIGN_IN_ERRORS = {
  access_denied: 'access denied',
  invalid_request: 'the sign-in request was refused',
  unauthorized_client: 'this app may not sign in there',
  unsupported_response_type: 'the sign-in request was refused',
  invalid_scope: 'the sign-in request was refused',
  server_error: 'the identity provider failed',
  temporarily_unavailable: 'the identity provider is unavailable; try again later',
};

export function currentSession() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const claims = token && claimsOf(token);
  if (!claims || (claims.exp && claims.exp * 1000 < Date.now() + 30_000)) return null;
  return { token, sub: claims.sub };
}

/** Goes to the provider's sign-in page. */
export async function signIn(auth) {
  const verifier = randomString(48);
  const state = randomString(16);
  // The page asked for (`#file/...`) comes back after the provider's round trip.
  sessionStorage.setItem(PENDING_KEY, JSON.stringify({ verifier, state, hash: location.hash }));
  const url = new URL(auth.authorizationEndpoint, location.origin);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: auth.clientId,
    redirect_uri: redirectUri(),
    scope: auth.scope || 'openid',
    state,
    code_challenge: await challengeOf(verifier),
    code_challenge_method: 'S256',
  }).toString();
  location.assign(url.toString());
}

/**
 * Back from the provider with `?code=&state=`: exchanges the code for tokens. Answers the
 * session, null when this page load is not a sign-in return; throws when the return is bad.
 */
export async function completeSignIn(auth) {
  const params = new URLSearchParams(location.search);
  if (!params.has('code') && !params.has('error')) return null;
  const pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) || 'null');
  sessionStorage.removeItem(PENDING_KEY);
  history.replaceState(null, '', location.pathname + (pending?.hash || location.hash));
  // Only an answer to this tab's own sign-in is read, and never its free text: a link with
  // `?error=...&error_description=...` would otherwise put anyone's words on this page.
  if (!pending || pending.state !== params.get('state')) throw new Error('sign-in failed: the answer does not match this sign-in (state)');
  if (params.has('error')) throw new Error(`sign-in refused (${SIGN_IN_ERRORS[params.get('error')] || 'the identity provider said no'})`);
  const resp = await fetch(new URL(auth.tokenEndpoint, location.origin), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: params.get('code'),
      redirect_uri: redirectUri(),
      client_id: auth.clientId,
      code_verifier: pending.verifier,
    }),
  });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok || !body.access_token) throw new Error(`sign-in failed: ${body.error_description || body.error || resp.status}`);
  sessionStorage.setItem(TOKEN_KEY, body.access_token);
  return currentSession();
}

export function signOut(auth) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (auth.logoutEndpoint) {
    const url = new URL(auth.logoutEndpoint, location.origin);
    url.search = new URLSearchParams({ client_id: auth.clientId, logout_uri: redirectUri() }).toString();
    location.assign(url.toString());
  } else {
    location.assign(redirectUri());
  }
}
