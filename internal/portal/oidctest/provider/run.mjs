// An OpenID Connect provider for spinbook's tests: npm oidc-provider (an
// OpenID-certified implementation) with static accounts, one client and its
// own login page. Run by internal/portal/oidctest; not for production.
//
// Everything comes from the environment, never argv (a secret in argv is
// visible to every user of the machine):
//   OIDCTEST_CLIENT    JSON {"id","secret","redirect_uris":[...]}
//   OIDCTEST_ACCOUNTS  JSON {"alice":{"password","email","groups":[...]}, ...}
//   OIDCTEST_COOKIE_KEY  a random key for the provider's signed cookies
// It listens on a free loopback port, then prints one JSON line
// {"issuer":"http://127.0.0.1:PORT"} on stdout. It exits when stdin closes,
// so it never outlives the test that started it.
import http from 'node:http';
import { Provider } from 'oidc-provider';

function fromEnv(name) {
  const raw = process.env[name];
  if (!raw) {
    console.error(`oidctest: ${name} is not set`);
    process.exit(2);
  }
  return raw;
}

const client = JSON.parse(fromEnv('OIDCTEST_CLIENT'));
const accounts = JSON.parse(fromEnv('OIDCTEST_ACCOUNTS'));
const cookieKey = fromEnv('OIDCTEST_COOKIE_KEY');

const scopeClaims = ['openid', 'email', 'profile', 'groups'];

function escapeHTML(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loginPage(uid, error) {
  const err = error ? `<p role="alert" id="error">${escapeHTML(error)}</p>` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in (spinbook test provider)</title></head>
<body><main>
<h1>Sign in</h1>${err}
<form method="post" action="/interaction/${escapeHTML(uid)}/login" autocomplete="off">
<label>User name <input name="login" id="login" autofocus></label>
<label>Password <input name="password" id="password" type="password"></label>
<button type="submit" id="submit">Sign in</button>
</form>
</main></body></html>`;
}

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > 16384) reject(new Error('form too large'));
    });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
}

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;

  const provider = new Provider(issuer, {
    clients: [{
      client_id: client.id,
      client_secret: client.secret,
      redirect_uris: client.redirect_uris,
      grant_types: ['authorization_code'],
      response_types: ['code'],
    }],
    cookies: { keys: [cookieKey] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['preferred_username', 'name'],
      groups: ['groups'],
    },
    // Like Google, Entra ID and Okta: the ID token itself carries the
    // claims of the scopes asked for, not only the userinfo endpoint.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(ctx, id) {
      const a = accounts[id];
      if (!a) return undefined;
      return {
        accountId: id,
        async claims() {
          return {
            sub: id,
            email: a.email,
            email_verified: true,
            preferred_username: id,
            name: id,
            groups: a.groups || [],
          };
        },
      };
    },
    // The one client is first-party: consent is implied, as a company's
    // provider does for its own apps.
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId
        || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope(scopeClaims.join(' '));
      grant.addOIDCClaims(['email', 'email_verified', 'preferred_username', 'name', 'groups']);
      await grant.save();
      return grant;
    },
  });

  const callback = provider.callback();
  server.on('request', async (req, res) => {
    const m = /^\/interaction\/([^/?]+)(\/login)?(\?.*)?$/.exec(req.url);
    if (!m) {
      callback(req, res);
      return;
    }
    try {
      const details = await provider.interactionDetails(req, res);
      if (details.uid !== m[1]) throw new Error('interaction does not match');
      res.setHeader('Cache-Control', 'no-store');
      if (req.method === 'GET' && !m[2]) {
        res.setHeader('Content-Type', 'text/html; charset=utf-8');
        res.end(loginPage(details.uid));
        return;
      }
      if (req.method !== 'POST' || !m[2]) {
        res.statusCode = 405;
        res.end('method not allowed\n');
        return;
      }
      const form = await readForm(req);
      const login = form.get('login') || '';
      const a = Object.hasOwn(accounts, login) ? accounts[login] : undefined;
      if (!a || a.password !== form.get('password')) {
        res.statusCode = 401;
        res.setHeader('Content-Type', 'text/html; charset=utf-8');
        res.end(loginPage(details.uid, 'Wrong user name or password.'));
        return;
      }
      await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
    } catch (err) {
      res.statusCode = 400;
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.end(`interaction failed: ${err.message}\n`);
    }
  });

  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
