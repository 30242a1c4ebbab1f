// The sign-in HTTP API (PROTOCOL.md, "HTTP API"), on embedded adapters and on real Redis + OpenLDAP.
import assert from './helpers/assert.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EmbeddedDirectory } from '../auth/directory-embedded.ts';
import { AuthService } from '../auth/service.ts';
import { EmbeddedThrottle } from '../auth/throttle-embedded.ts';
import { EmbeddedTokenStore } from '../auth/token-store-embedded.ts';
import { loadConfig } from '../common/config.ts';
import { PASSWORD, registerUser, startTestParley, uniqueName, type Backend, type TestParley } from './helpers/parley.ts';

for (const backend of ['embedded', 'real'] as Backend[]) {
  describe(`auth HTTP API, ${backend} adapters`, () => {
    let p: TestParley;
    before(async () => {
      p = await startTestParley(backend);
    });
    after(async () => p.stop());

    it('registers, refuses a taken name, and validates input', async () => {
      const name = uniqueName();
      const ok = await p.http('/v1/auth/register', { body: { username: name, password: PASSWORD, displayName: 'Ada L.' } });
      assert.equal(ok.status, 201);
      assert.deepEqual(ok.body, { username: name });
      const taken = await p.http('/v1/auth/register', { body: { username: name, password: PASSWORD } });
      assert.equal(taken.status, 409);
      assert.equal(taken.body.error.code, 'conflict');
      for (const body of [
        { username: 'A-Upper', password: PASSWORD },
        { username: 'x', password: PASSWORD },
        { username: uniqueName(), password: 'short' },
        { username: uniqueName() },
        { username: uniqueName(), password: PASSWORD, displayName: 'bad\u0000name' },
        { username: 42, password: PASSWORD },
      ]) {
        const res = await p.http('/v1/auth/register', { body });
        assert.equal(res.status, 400, JSON.stringify(body));
        assert.equal(res.body.error.code, 'bad_request');
        assert.equal(typeof res.body.error.message, 'string');
      }
    });

    it('logs in, answers /v1/me, and logs out', async () => {
      const name = await registerUser(p);
      const login = await p.http('/v1/auth/login', { body: { username: name, password: PASSWORD } });
      assert.equal(login.status, 200);
      assert.match(login.body.token, /^pt_/);
      assert.ok(Date.parse(login.body.expiresAt) > Date.now());
      const me = await p.http('/v1/me', { token: login.body.token });
      assert.equal(me.status, 200);
      assert.deepEqual(me.body, { username: name, displayName: name.toUpperCase() });
      assert.equal((await p.http('/v1/auth/login', { body: { username: name, password: 'wrong-password' } })).status, 401);
      assert.equal((await p.http('/v1/auth/login', { body: { username: uniqueName(), password: PASSWORD } })).status, 401);
      assert.equal((await p.http('/v1/auth/logout', { method: 'POST', token: login.body.token })).status, 204);
      assert.equal((await p.http('/v1/me', { token: login.body.token })).status, 401);
      assert.equal((await p.http('/v1/me')).status, 401);
      assert.equal((await p.http('/v1/me', { token: 'pt_forged' })).status, 401);
    });

    it('answers junk with JSON errors and no stack trace', async () => {
      const res = await fetch(`http://127.0.0.1:${p.running.httpPort}/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"username":' });
      assert.equal(res.status, 400);
      const text = await res.text();
      assert.equal(JSON.parse(text).error.code, 'bad_request');
      assert.ok(!/at .*\.ts:\d+/.test(text), 'no stack trace');
      const missing = await p.http('/v1/nothing-here');
      assert.equal(missing.status, 404);
      assert.equal(missing.body.error.code, 'not_found');
      const ready = await p.http('/readyz');
      assert.equal(ready.status, 200);
      assert.equal(ready.body.adapters.directory, backend === 'real' ? 'ldap' : 'embedded');
      assert.equal(ready.body.adapters.offlineQueue, backend === 'real' ? 'redis' : 'embedded');
      const metrics = await fetch(`http://127.0.0.1:${p.running.httpPort}/metrics`).then((r) => r.text());
      assert.match(metrics, /parley_sign_ins_total/);
    });
  });
}

describe('auth HTTP API with self-registration off', () => {
  it('answers register with 403', async () => {
    const p = await startTestParley('embedded', { PARLEY_SELF_REGISTRATION: 'false' });
    try {
      const res = await p.http('/v1/auth/register', { body: { username: uniqueName(), password: PASSWORD } });
      assert.equal(res.status, 403);
      assert.equal(res.body.error.code, 'forbidden');
    } finally {
      await p.stop();
    }
  });
});

describe('logout against a sign-in still in flight', () => {
  it('closes a session tracked just after its token was revoked (here or on another node), and only that one', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-auth-'));
    try {
      const config = loadConfig({ PARLEY_DATA_DIR: dir, PARLEY_LOG_LEVEL: 'silent' });
      const auth = new AuthService({ config, directory: new EmbeddedDirectory(dir), tokens: new EmbeddedTokenStore(), throttle: new EmbeddedThrottle() });
      const session = () => ({ closed: false, close() { this.closed = true; } });
      // The token was looked up before the revocation, the session is tracked after it.
      auth.closeSessions('revoked-elsewhere');
      const late = session();
      auth.track('revoked-elsewhere', late);
      assert.equal(late.closed, true, 'a logout heard from another node');
      await auth.logout('revoked-here');
      const lateHere = session();
      auth.track('revoked-here', lateHere);
      assert.equal(lateHere.closed, true, 'a logout on this node');
      const other = session();
      auth.track('still-good', other);
      assert.equal(other.closed, false, 'another token is left alone');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
