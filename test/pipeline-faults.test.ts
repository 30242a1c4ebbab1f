// The event pipeline under faults, on the real stack: the archiver killed mid-stream, Kafka stopped under
// load, HBase stopped under load. Chat goes on; the archive ends equal to the set of acked messages.
import assert from './helpers/assert.ts';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../bench/systems.ts';
import { killChild, repo, startChild, type ChildParley } from './helpers/child.ts';
import { connectDevice, registerUser, sleep, startTestParley, testEnv, type TestDevice, type TestParley } from './helpers/parley.ts';

/** Runs the stack CLI (`down`/`up` of one service) and fails the test if it fails. */
function stack(command: 'up' | 'down', service: string): void {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(repo, 'test/stack/cli.ts'), command, '--only', service], { cwd: repo, encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, `stack ${command} ${service} failed:\n${r.stdout}\n${r.stderr}`);
}

/** Every archived message id between two users, through the archive port (newest first pages). */
async function archivedIds(p: TestParley, a: string, b: string): Promise<string[]> {
  const conversation = a < b ? `u:${a}:${b}` : `u:${b}:${a}`;
  const ids: string[] = [];
  let before: string | undefined;
  for (;;) {
    const page = await p.running.ports.archive.page(conversation, { before, limit: 200 });
    ids.push(...page.map((m) => m.id));
    if (page.length < 200) return ids;
    before = page[page.length - 1].id;
  }
}

async function untilArchived(p: TestParley, a: string, b: string, acked: Set<string>, timeoutMs = 180_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ids = await archivedIds(p, a, b).catch(() => [] as string[]);
    if ([...acked].every((id) => ids.includes(id))) return ids;
    if (Date.now() > deadline) throw new Error(`archive has ${ids.length} of ${acked.size} acked messages`);
    await sleep(500);
  }
}

const ackIds = (d: TestDevice) => new Set(d.received.filter((r) => r.body.kind === 'ack').map((r) => r.body.id as string));

it('a broker starts and chats with Kafka, HBase and object storage all down, and ships the backlog once Kafka is there', async () => {
  // Ports nothing listens on.
  const [kafka, hbase, s3] = [await freePort(), await freePort(), await freePort()];
  const env = testEnv('real', {}, { pipeline: true, s3: true });
  const real = { kafka: env.PARLEY_KAFKA_BROKERS };
  Object.assign(env, { PARLEY_KAFKA_BROKERS: `127.0.0.1:${kafka}`, PARLEY_HBASE_PORT: String(hbase), PARLEY_S3_ENDPOINT: `http://127.0.0.1:${s3}` });
  const p = await startTestParley('real', {}, { env, roles: ['broker'] });
  try {
    const [ann, ben] = [await registerUser(p), await registerUser(p)];
    const a = await connectDevice(p, 'tcp', ann);
    const b = await connectDevice(p, 'tcp', ben);
    const ack = await a.sendAndAck(ben, { body: 'with the pipeline down' });
    assert.equal(ack.kind, 'ack');
    assert.equal((await b.waitForInbox(1))[0].id, ack.id);
    assert.ok((await p.running.ports.outbox.length()) >= 1, 'the outbox keeps it for Kafka');
    const ready = await p.http('/readyz');
    assert.equal(ready.status, 503, 'not ready: the backends are down');
    assert.deepEqual(ready.body.checks, { directory: true, eventLog: false, archive: false, blobStore: false, redis: true });
    const chat = await p.http('/readyz?scope=chat');
    assert.equal(chat.status, 200, 'ready for chat: what it needs answers');
    assert.deepEqual(chat.body.checks, { directory: true, redis: true });
    assert.equal((await p.http('/readyz?scope=everything')).status, 400);
    await Promise.all([a.close(), b.close()]);
  } finally {
    await p.stop();
  }
  // The same settings with the real Kafka: the outbox of a broker started the same way empties.
  const q = await startTestParley('real', {}, { env: { ...env, PARLEY_KAFKA_BROKERS: real.kafka }, roles: ['broker'] });
  try {
    const [ann, ben] = [await registerUser(q), await registerUser(q)];
    const a = await connectDevice(q, 'tcp', ann);
    await a.sendAndAck(ben, { body: 'and with Kafka there' });
    const deadline = Date.now() + 60_000;
    while ((await q.running.ports.outbox.length()) > 0 && Date.now() < deadline) await sleep(200);
    assert.equal(await q.running.ports.outbox.length(), 0, 'shipped: the topic was made in the background');
    await a.close();
  } finally {
    await q.stop();
  }
});

describe('event pipeline under faults (real Kafka and HBase)', () => {
  const env = testEnv('real', {}, { pipeline: true });
  let p: TestParley;
  let archiver: ChildParley | null = null;
  before(async () => {
    // The broker in this process; the archiver in a process of its own, so it can be killed alone.
    p = await startTestParley('real', {}, { env, roles: ['broker'] });
  });
  after(async () => {
    if (archiver) await killChild(archiver);
    await p.stop();
  });

  it('an archiver killed mid-stream and restarted leaves the archive equal to the acked set', async () => {
    archiver = await startChild(env, 'archiver');
    const [ann, ben] = [await registerUser(p), await registerUser(p)];
    const a = await connectDevice(p, 'tcp', ann);
    const total = 4000;
    for (let i = 0; i < total; i++) a.send(ben, { body: `m${i}` });
    await a.waitFor(() => ackIds(a).size >= total / 4, 'a quarter of the acks', 60_000);
    await killChild(archiver); // while messages are still being accepted and archived
    await a.waitFor(() => ackIds(a).size === total, 'every ack', 120_000);
    archiver = await startChild(env, 'archiver');
    const acked = ackIds(a);
    const ids = await untilArchived(p, ann, ben, acked);
    assert.equal(ids.length, acked.size, 'nothing archived twice, nothing that was not acked');
    assert.deepEqual(new Set(ids), acked);
    await a.close();
  });

  it('keeps chatting while Kafka is down, and the archive catches up when it returns', async () => {
    const [ann, ben] = [await registerUser(p), await registerUser(p)];
    const a = await connectDevice(p, 'tcp', ann);
    const b = await connectDevice(p, 'tcp', ben);
    await a.sendAndAck(ben, { body: 'before the outage' });
    stack('down', 'kafka');
    try {
      for (let i = 0; i < 300; i++) a.send(ben, { body: `during ${i}` });
      await a.waitFor(() => ackIds(a).size === 301, 'acks while Kafka is down', 60_000);
      await b.waitForInbox(301, 60_000);
      assert.ok((await p.running.ports.outbox.length()) > 0, 'the outbox holds what Kafka could not take');
    } finally {
      stack('up', 'kafka');
    }
    const ids = await untilArchived(p, ann, ben, ackIds(a));
    assert.equal(ids.length, 301);
    await Promise.all([a.close(), b.close()]);
  });

  it('keeps chatting while HBase is down; the archiver retries and loses nothing', async () => {
    const [ann, ben] = [await registerUser(p), await registerUser(p)];
    const a = await connectDevice(p, 'tcp', ann);
    await a.sendAndAck(ben, { body: 'before the outage' });
    stack('down', 'hbase');
    try {
      for (let i = 0; i < 300; i++) a.send(ben, { body: `during ${i}` });
      await a.waitFor(() => ackIds(a).size === 301, 'acks while HBase is down', 60_000);
      await sleep(2000); // the archiver meets the outage and retries
    } finally {
      stack('up', 'hbase');
    }
    const ids = await untilArchived(p, ann, ben, ackIds(a));
    assert.equal(ids.length, 301);
    await a.close();
  });
});
