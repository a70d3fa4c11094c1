// A real OpenID provider on loopback for the auth tests: oauth2-mock-server, whose token
// endpoint (client_credentials) signs what the test asks for in the form it posts:
// `aud`, `preferred_username`, `sub`, `groups` (comma-separated, sent as an array) and
// `exp_offset` (seconds from now, negative: expired).
// Reads commands on stdin: `rotate` adds a new signing key (answered `rotated <kid>`);
// `jwks-hits` answers how often the key set was fetched (`jwks-hits <n>`); `login <user>
// [group,…]` says who is at the browser: the authorization-code logins that follow sign in as
// that user with those groups (the mock provider has no login form of its own).
// Usage: node idp.mjs PORT   (prints `ready <issuer>` once it listens)
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';
import { OAuth2Server } from 'oauth2-mock-server';

const port = Number(process.argv[2]);
const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');

let loginAs = null;
server.service.on('beforeTokenSigning', (token, req) => {
  const body = req.body ?? {};
  if (body.grant_type === 'authorization_code' && loginAs !== null) {
    token.payload.preferred_username = loginAs.username;
    token.payload.sub = `subject-${loginAs.username}`;
    if (loginAs.groups.length > 0) token.payload.groups = loginAs.groups;
  }
  for (const claim of ['preferred_username', 'sub']) {
    if (typeof body[claim] === 'string') token.payload[claim] = body[claim];
  }
  // Providers always name a subject; here it differs from the user name, as it does at most.
  if (token.payload.sub === undefined && typeof body.preferred_username === 'string') {
    token.payload.sub = `subject-${body.preferred_username}`;
  }
  if (typeof body.groups === 'string') {
    token.payload.groups = body.groups.split(',').filter((g) => g.length > 0);
  }
  if (typeof body.exp_offset === 'string') {
    token.payload.exp = Math.floor(Date.now() / 1000) + Number(body.exp_offset);
  }
});

// The provider's own handler behind a server that counts key-set fetches.
let jwksHits = 0;
const http = createServer((req, res) => {
  if (req.url.split('?')[0] === '/jwks') jwksHits += 1;
  server.service.requestHandler(req, res);
});
await new Promise((resolve) => http.listen(port, '127.0.0.1', resolve));
server.issuer.url = `http://127.0.0.1:${port}`;
console.log(`ready ${server.issuer.url}`);

createInterface({ input: process.stdin }).on('line', async (line) => {
  if (line.trim() === 'rotate') {
    const key = await server.issuer.keys.generate('RS256');
    console.log(`rotated ${key.kid}`);
  } else if (line.trim() === 'jwks-hits') {
    console.log(`jwks-hits ${jwksHits}`);
  } else if (line.startsWith('login ')) {
    const [, username, groups = ''] = line.trim().split(/\s+/);
    loginAs = { username, groups: groups.split(',').filter((g) => g.length > 0) };
    console.log(`login ${username}`);
  }
});
process.stdin.on('end', () => http.close(() => process.exit(0)));
