// Preload for the TypeScript SDK's example server with its demo authorization server
// (`node --import short_tokens.mjs simpleStreamableHttp.js --oauth`), so codemode's token
// refresh can be tested: the demo provider issues hour-long tokens and no refresh token, and
// answers an expired token with a 500. Patched here:
//  - access tokens live DEMO_TOKEN_TTL_SECS (default 3600) and come with a refresh token;
//  - grant_type=refresh_token works and rotates the refresh token;
//  - while the file DEMO_REFUSE_REFRESH_FILE exists, every refresh is refused (invalid_grant);
//  - an expired or unknown token gets a 401 with WWW-Authenticate (the SDK's bearer check);
//  - tokens can be revoked (RFC 7009, so the metadata names a revocation endpoint); each
//    revocation appends its token_type_hint to the file DEMO_REVOCATIONS_FILE.
// MCP_SDK_DIR is the SDK package directory.
import { randomUUID } from 'node:crypto';
import { appendFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const sdk = process.env.MCP_SDK_DIR;
const load = (file) => import(pathToFileURL(path.join(sdk, file)).href);
const { DemoInMemoryAuthProvider } = await load('dist/esm/examples/server/demoInMemoryOAuthProvider.js');
const errors = await load('dist/esm/server/auth/errors.js');

const ttl = Number(process.env.DEMO_TOKEN_TTL_SECS ?? 3600);
const refuseFile = process.env.DEMO_REFUSE_REFRESH_FILE;
const revocationsFile = process.env.DEMO_REVOCATIONS_FILE;
const provider = DemoInMemoryAuthProvider.prototype;
const exchangeCode = provider.exchangeAuthorizationCode;

function issue(self, clientId, scopes, resource) {
  const token = randomUUID();
  const refresh = randomUUID();
  self.tokens.set(token, { token, clientId, scopes, expiresAt: Date.now() + ttl * 1000, resource });
  self.refreshTokens ??= new Map();
  self.refreshTokens.set(refresh, { clientId, scopes, resource });
  return { access_token: token, token_type: 'bearer', expires_in: ttl, scope: scopes.join(' '), refresh_token: refresh };
}

provider.exchangeAuthorizationCode = async function (client, code, verifier) {
  const data = this.codes.get(code);
  const answer = await exchangeCode.call(this, client, code, verifier);
  this.tokens.delete(answer.access_token);
  return issue(this, client.client_id, data.params.scopes || [], data.params.resource);
};

provider.exchangeRefreshToken = async function (client, refreshToken, scopes, resource) {
  const known = this.refreshTokens?.get(refreshToken);
  if (!known || known.clientId !== client.client_id || (refuseFile && existsSync(refuseFile))) {
    throw new errors.InvalidGrantError('Invalid refresh token');
  }
  this.refreshTokens.delete(refreshToken);
  return issue(this, client.client_id, scopes ?? known.scopes, known.resource);
};

provider.verifyAccessToken = async function (token) {
  const known = this.tokens.get(token);
  if (!known) return { token, clientId: '', scopes: [], expiresAt: 0 };
  return { token, clientId: known.clientId, scopes: known.scopes, expiresAt: Math.floor(known.expiresAt / 1000), resource: known.resource };
};

provider.revokeToken = async function (client, request) {
  this.tokens.delete(request.token);
  this.refreshTokens?.delete(request.token);
  if (revocationsFile) appendFileSync(revocationsFile, `${request.token_type_hint ?? 'unknown'}\n`);
};
