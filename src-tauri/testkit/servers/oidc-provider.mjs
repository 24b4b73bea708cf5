// A real OpenID Provider (npm `oidc-provider`) on loopback for Holdline's
// login tests. Access tokens are JWTs for the feed resource and live
// `access_token_ttl_s` seconds. Login and consent are granted at once to
// user "tester", and the script can play the user's browser, so a test
// drives the authorization-code and device flows without a person.
//
// Options come as one JSON argument: {access_token_ttl_s, client_secret}.
//
// Clients: "holdline-cli" (public, native: authorization code with PKCE
// and a loopback redirect, device code, refresh tokens) and
// "holdline-service" (confidential: client credentials).
//
// stdin:  {"id": N, "cmd": "browse", "url": U}   follow U as a browser
//          would: redirects with cookies, confirming a device code page;
//          stops at a loopback redirect, which it requests.
//         {"id": N, "cmd": "revoke", "token": T}  RFC 7009, as holdline-cli
// stdout: {"type": "listening", "port": P, "issuer": I, "resource": R}
//         {"type": "token", "grant_type": G, "client_id": C}
//         {"type": "done", "id": N, "ok": B, "detail": D}

import { generateKeyPairSync } from "node:crypto";
import { createServer } from "node:http";
import { createInterface } from "node:readline";
import Provider from "oidc-provider";

const options = JSON.parse(process.argv[2] ?? "{}");
const say = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const ttl = options.access_token_ttl_s ?? 5;
const resource = "urn:holdline:feeds";
const account = "tester";

const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: "jwk" }), kid: "test", use: "sig", alg: "RS256" };

const http = createServer();
await new Promise((resolve) => http.listen(0, "127.0.0.1", resolve));
const port = http.address().port;
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: "holdline-cli",
      application_type: "native",
      token_endpoint_auth_method: "none",
      grant_types: ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"],
      response_types: ["code"],
      redirect_uris: ["http://127.0.0.1/callback"],
    },
    {
      client_id: "holdline-service",
      client_secret: options.client_secret ?? "service-secret",
      grant_types: ["client_credentials"],
      response_types: [],
      redirect_uris: [],
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: ["holdline-test-cookies"] },
  scopes: ["openid", "offline_access", "feeds"],
  features: {
    devInteractions: { enabled: false },
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: "feeds",
        audience: resource,
        accessTokenTTL: ttl,
        accessTokenFormat: "jwt",
      }),
    },
  },
  // Every grant that may refresh gets a refresh token, offline_access or not.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed("refresh_token"),
  pkce: { required: () => true },
  ttl: { AccessToken: ttl, ClientCredentials: ttl, DeviceCode: 120, RefreshToken: 3600, Grant: 3600 },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
});
provider.proxy = false;

// The user logs in and consents to everything asked, at once.
provider.use(async (ctx, next) => {
  const match = ctx.path.match(/^\/interaction\/([^/]+)$/);
  if (!match) {
    await next();
    if (ctx.path === "/token" && ctx.status === 200) {
      say({ type: "token", grant_type: ctx.oidc?.params?.grant_type, client_id: ctx.oidc?.client?.clientId });
    }
    return;
  }
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  let result;
  if (details.prompt.name === "login") {
    result = { login: { accountId: account } };
  } else {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: account, clientId: details.params.client_id });
    const missing = details.prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(" "));
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(" "));
    }
    grant.addResourceScope(resource, "feeds");
    result = { consent: { grantId: await grant.save() } };
  }
  await provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
  ctx.respond = false;
});

http.on("request", provider.callback());
say({ type: "listening", port, issuer, resource });

// A browser: cookies per path-less host, redirects followed by hand so a
// loopback redirect (the client's) is seen and requested once.
async function browse(start) {
  const jar = new Map();
  const cookieHeader = () => [...jar].map(([k, v]) => `${k}=${v}`).join("; ");
  const keep = (response) => {
    for (const cookie of response.headers.getSetCookie()) {
      const [pair] = cookie.split(";");
      const at = pair.indexOf("=");
      jar.set(pair.slice(0, at), pair.slice(at + 1));
    }
  };
  let url = new URL(start);
  let request = { method: "GET" };
  for (let hop = 0; hop < 20; hop++) {
    const own = url.origin === issuer;
    const response = await fetch(url, {
      ...request,
      redirect: "manual",
      headers: { ...(request.headers ?? {}), ...(own ? { cookie: cookieHeader() } : {}) },
    });
    if (!own) {
      return { ok: response.ok, detail: `${response.status} from ${url.origin}${url.pathname}` };
    }
    keep(response);
    request = { method: "GET" };
    const location = response.headers.get("location");
    if (location) {
      url = new URL(location, url);
      continue;
    }
    const body = await response.text();
    const xsrf = body.match(/name="xsrf" value="([^"]+)"/);
    const userCode = body.match(/name="user_code" value="([^"]+)"/);
    if (response.ok && xsrf && userCode) {
      const form = new URLSearchParams({ xsrf: xsrf[1], user_code: userCode[1], confirm: "yes" });
      request = { method: "POST", body: form, headers: { "content-type": "application/x-www-form-urlencoded" } };
      continue;
    }
    const title = body.match(/<title>([^<]*)<\/title>/);
    const failed = !response.ok || /error/i.test(title?.[1] ?? "");
    return { ok: !failed, detail: `${response.status} ${title?.[1] ?? ""}`.trim() };
  }
  return { ok: false, detail: "too many redirects" };
}

async function revoke(token) {
  const response = await fetch(`${issuer}/token/revocation`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token, client_id: "holdline-cli" }),
  });
  return { ok: response.ok, detail: String(response.status) };
}

const commands = createInterface({ input: process.stdin });
commands.on("line", async (line) => {
  const command = JSON.parse(line);
  let result;
  try {
    if (command.cmd === "browse") result = await browse(command.url);
    else if (command.cmd === "revoke") result = await revoke(command.token);
    else result = { ok: false, detail: `unknown command ${command.cmd}` };
  } catch (err) {
    result = { ok: false, detail: String(err) };
  }
  say({ type: "done", id: command.id, ...result });
});
commands.on("close", () => process.exit(0));
