// A second OIDC provider for mcpgw tests (stands for Entra ID, Okta, ...), built on
// panva's oidc-provider. Started by scripts/deps/oidc.sh; everything is configured by
// environment and lives in memory (keys too: a restart invalidates earlier tokens).
//
//   PORT                    port on 127.0.0.1 (required)
//   OIDC_REALM              issuer is http://127.0.0.1:PORT/realms/OIDC_REALM (default: second)
//   OIDC_AUDIENCE           `aud` of access tokens requested without a `resource` (default: mcp-gateway);
//                           with `resource=URI` (RFC 8707) the `aud` is that URI
//   OIDC_SCOPES             scopes the resource server accepts (default: "mcp")
//   OIDC_M2M_SECRET         secret of client mcpgw-m2m, client_credentials (default: mcpgw-m2m-secret)
//   OIDC_WEB_SECRET         secret of client mcpgw-web, authorization code + PKCE (default: mcpgw-web-secret)
//   OIDC_WEB_REDIRECT_URIS  its redirect URIs, comma-separated (default: http://127.0.0.1/callback);
//                           a loopback URI matches on any port (RFC 8252 section 7.3)
//   OIDC_USER, OIDC_PASSWORD, OIDC_GROUPS  the one user (default: alice / alice-password / mcp-users;
//                           OIDC_GROUPS comma-separated, sent as the `groups` claim)
//
// Access tokens are JWTs (RS256, typ at+jwt) because every token is issued for a resource
// server (resourceIndicators); without that oidc-provider issues opaque tokens.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import express from 'express';
import Provider from 'oidc-provider';

const env = (name, fallback) => process.env[name] || fallback;
const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);

const port = Number(env('PORT'));
if (!port) throw new Error('set PORT');
const mount = `/realms/${env('OIDC_REALM', 'second')}`;
const issuer = `http://127.0.0.1:${port}${mount}`;
const audience = env('OIDC_AUDIENCE', 'mcp-gateway');
const scopes = env('OIDC_SCOPES', 'mcp');
const user = {
  sub: env('OIDC_USER', 'alice'),
  password: env('OIDC_PASSWORD', 'alice-password'),
  groups: list(env('OIDC_GROUPS', 'mcp-users')),
};
// Resource indicator used when the client names none; its audience is OIDC_AUDIENCE.
const DEFAULT_RESOURCE = 'urn:mcpgw:default';

const signingKey = {
  ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }),
  kid: `test-${randomBytes(4).toString('hex')}`,
  alg: 'RS256',
  use: 'sig',
};

const account = (sub) => sub === user.sub && {
  accountId: sub,
  claims: async () => ({
    sub,
    name: sub,
    preferred_username: sub,
    email: `${sub}@example.test`,
    email_verified: true,
    groups: user.groups,
  }),
};

const provider = new Provider(issuer, {
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  clients: [
    {
      client_id: 'mcpgw-m2m',
      client_secret: env('OIDC_M2M_SECRET', 'mcpgw-m2m-secret'),
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    },
    {
      client_id: 'mcpgw-web',
      client_secret: env('OIDC_WEB_SECRET', 'mcpgw-web-secret'),
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: list(env('OIDC_WEB_REDIRECT_URIS', 'http://127.0.0.1/callback')),
    },
  ],
  pkce: { required: () => true },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  // Put the requested claims (groups, ...) in the ID token too: the access token is for
  // the resource server, so the client cannot take it to userinfo.
  conformIdTokenClaims: false,
  findAccount: async (_ctx, sub) => account(sub) || undefined,
  // The user's groups in their access tokens too, as Entra/Okta/Keycloak can be set to do.
  extraTokenClaims: async (_ctx, token) => (token.accountId === user.sub ? { groups: user.groups } : undefined),
  features: {
    devInteractions: { enabled: false }, // our own login below checks the password
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf || DEFAULT_RESOURCE,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resource) => ({
        scope: scopes,
        audience: resource === DEFAULT_RESOURCE ? audience : resource,
        accessTokenTTL: 600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  interactions: { url: (_ctx, interaction) => `${mount}/interaction/${interaction.uid}` },
});

// Tests start this provider before they know the gateway's port: like oidc-provider does for
// native clients, let a registered loopback redirect URI match on any port.
const stripPort = (uri) => {
  const u = URL.parse(uri);
  if (!u || u.protocol !== 'http:' || u.hostname !== '127.0.0.1') return undefined;
  u.port = '';
  return u.href;
};
const redirectUriAllowed = provider.Client.prototype.redirectUriAllowed;
provider.Client.prototype.redirectUriAllowed = function allowed(uri) {
  return redirectUriAllowed.call(this, uri)
    || (stripPort(uri) !== undefined && this.redirectUris.some((r) => stripPort(r) === stripPort(uri)));
};

const app = express();
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// Login: a plain form (field names username/password). Consent is granted at once.
app.get(`${mount}/interaction/:uid`, async (req, res, next) => {
  try {
    const { uid, prompt, params, session, grantId } = await provider.interactionDetails(req, res);
    res.set('Cache-Control', 'no-store');
    if (prompt.name === 'login') {
      const error = req.query.error ? '<p id="error">invalid username or password</p>' : '';
      return res.type('html').send(`<!doctype html><title>Sign in</title><h1>Sign in to ${esc(params.client_id)}</h1>${error}
<form method="post" action="${mount}/interaction/${esc(uid)}/login">
<input name="username" autofocus> <input name="password" type="password"> <button type="submit">Sign in</button></form>`);
    }
    // prompt consent: grant whatever is missing (first-party test clients only).
    const { details } = prompt;
    const grant = grantId
      ? await provider.Grant.find(grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
    if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
    for (const [resource, s] of Object.entries(details.missingResourceScopes || {})) {
      grant.addResourceScope(resource, s.join(' '));
    }
    return await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } });
  } catch (err) {
    return next(err);
  }
});

app.post(`${mount}/interaction/:uid/login`, express.urlencoded({ extended: false }), async (req, res, next) => {
  try {
    const { uid } = await provider.interactionDetails(req, res);
    const { username, password } = req.body;
    if (username !== user.sub || password !== user.password) {
      return res.redirect(303, `${mount}/interaction/${uid}?error=1`);
    }
    return await provider.interactionFinished(req, res, { login: { accountId: username } });
  } catch (err) {
    return next(err);
  }
});

app.use(mount, provider.callback());

app.listen(port, '127.0.0.1', () => console.log(`oidc-provider listening, issuer ${issuer}`));
