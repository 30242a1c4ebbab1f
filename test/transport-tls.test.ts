// MQTT over TLS when a certificate is configured (PROTOCOL.md, "Connecting").
import assert from './helpers/assert.ts';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { connectDevice, PASSWORD, registerUser, startTestParley, type TestParley } from './helpers/parley.ts';

describe('MQTT over TLS', () => {
  let p: TestParley;
  let dir: string;
  let cert: Buffer;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-tls-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
    cert = fs.readFileSync(path.join(dir, 'cert.pem'));
    p = await startTestParley('embedded', { PARLEY_TLS_CERT: path.join(dir, 'cert.pem'), PARLEY_TLS_KEY: path.join(dir, 'key.pem'), PARLEY_TLS_PORT: '0' });
  });
  after(async () => {
    await p.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('signs in over TLS and exchanges messages with a TCP client', async () => {
    const [alice, bob] = [await registerUser(p), await registerUser(p)];
    assert.ok(p.running.tlsPort);
    const client = await mqtt.connectAsync(`mqtts://127.0.0.1:${p.running.tlsPort}`, { username: alice, password: PASSWORD, ca: cert, reconnectPeriod: 0 });
    const b = await connectDevice(p, 'tcp', bob);
    await client.subscribeAsync(`inbox/${alice}`, { qos: 1 });
    const acked = new Promise<any>((resolve) => client.on('message', (_t, payload) => resolve(JSON.parse(payload.toString()))));
    await client.publishAsync(`send/user/${bob}`, JSON.stringify({ cid: 'tls1', body: 'over tls' }), { qos: 1 });
    assert.equal((await acked).kind, 'ack');
    const [m] = await b.waitForInbox(1);
    assert.equal(m.body, 'over tls');
    assert.equal(m.from, alice);
    await client.endAsync();
    await b.close();
  });

  it('refuses a client that does not trust the certificate', async () => {
    await assert.rejects(mqtt.connectAsync(`mqtts://127.0.0.1:${p.running.tlsPort}`, { username: 'x', password: 'y', reconnectPeriod: 0, connectTimeout: 3000 }));
  });
});
