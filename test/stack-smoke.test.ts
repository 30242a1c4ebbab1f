// Proves each real service of test/stack/ is the real thing, through the settings in .stack.env.
// Skipped for a service whose settings are absent (stack not started: embedded adapters only).
import { test } from 'node:test';
import assert from './helpers/assert.ts';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { Client, InvalidCredentialsError } from 'ldapts';
import kafkajs from 'kafkajs';
import { loadStackEnv } from './stack/env.ts';
import { demoUsers } from './stack/ldap.ts';

const { Kafka, Partitioners, logLevel } = kafkajs;
const env = loadStackEnv();
const missing = (key: string) => (env[key] ? false : `${key} not in .stack.env (run npm run stack:up)`);

test('redis: INFO shows Redis 7 with the AOF on', { skip: missing('PARLEY_REDIS_URL') }, async () => {
  const redis = new Redis(env.PARLEY_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const server = await redis.info('server');
    assert.match(server, /^redis_version:7\./m);
    const persistence = await redis.info('persistence');
    assert.match(persistence, /^aof_enabled:1\r?$/m);
    const [, fsync] = (await redis.config('GET', 'appendfsync')) as string[];
    assert.equal(fsync, 'always');
    const key = `smoke:${randomUUID()}`;
    await redis.set(key, 'ok', 'EX', 60);
    assert.equal(await redis.get(key), 'ok');
  } finally {
    redis.disconnect();
  }
});

test('ldap: admin bind + search finds alice; alice binds with her password only', { skip: missing('PARLEY_LDAP_URL') }, async () => {
  const url = env.PARLEY_LDAP_URL;
  const admin = new Client({ url, timeout: 5000 });
  try {
    await admin.bind(env.PARLEY_LDAP_ADMIN_DN, env.PARLEY_LDAP_ADMIN_PASSWORD);
    const { searchEntries } = await admin.search(env.PARLEY_LDAP_USERS_DN, {
      scope: 'sub',
      filter: '(&(objectClass=inetOrgPerson)(uid=alice))',
      attributes: ['uid', 'cn', 'sn', 'displayName'],
    });
    assert.equal(searchEntries.length, 1);
    const alice = searchEntries[0];
    assert.equal(alice.dn, `uid=alice,${env.PARLEY_LDAP_USERS_DN}`);
    assert.equal(alice.displayName, 'Alice');
  } finally {
    await admin.unbind();
  }

  const aliceDn = `uid=alice,${env.PARLEY_LDAP_USERS_DN}`;
  const asAlice = new Client({ url, timeout: 5000 });
  try {
    await asAlice.bind(aliceDn, demoUsers.alice);
    // A bound user reads the directory but never another user's password hash.
    const { searchEntries } = await asAlice.search(`uid=bob,${env.PARLEY_LDAP_USERS_DN}`, { scope: 'base' });
    assert.equal(searchEntries.length, 1);
    assert.equal(searchEntries[0].userPassword, undefined);
  } finally {
    await asAlice.unbind();
  }

  const wrong = new Client({ url, timeout: 5000 });
  try {
    await assert.rejects(wrong.bind(aliceDn, 'not-her-password'), InvalidCredentialsError);
  } finally {
    await wrong.unbind();
  }

  // Anonymous may authenticate but not read.
  const anonymous = new Client({ url, timeout: 5000 });
  try {
    const { searchEntries } = await anonymous.search(env.PARLEY_LDAP_USERS_DN, { scope: 'sub', filter: '(uid=alice)' });
    assert.equal(searchEntries.length, 0);
  } catch (err) {
    assert.ok(err instanceof Error && /insufficient|no such object/i.test(`${err.name} ${err.message}`), String(err));
  } finally {
    await anonymous.unbind();
  }
});

test('kafka: produce + consume through a consumer group on a fresh topic', { skip: missing('PARLEY_KAFKA_BROKERS') }, async () => {
  const kafka = new Kafka({
    clientId: 'parley-stack-smoke',
    brokers: env.PARLEY_KAFKA_BROKERS.split(','),
    logLevel: logLevel.WARN,
  });
  const topic = `smoke.${randomUUID()}`;
  const admin = kafka.admin();
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  const groupId = `smoke-${randomUUID()}`;
  const consumer = kafka.consumer({ groupId });
  try {
    await admin.connect();
    assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 2, replicationFactor: 1 }], waitForLeaders: true }), true);

    await producer.connect();
    const sent = ['one', 'two', 'three'];
    await producer.send({ topic, acks: -1, messages: sent.map((value) => ({ key: 'conversation-1', value })) });

    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    const received: string[] = [];
    const all = new Promise<void>((resolve) => {
      void consumer.run({
        eachMessage: async ({ message }) => {
          received.push(message.value!.toString());
          if (received.length === sent.length) resolve();
        },
      });
    });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      all,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`received only ${JSON.stringify(received)}`)), 30_000);
      }),
    ]).finally(() => clearTimeout(timer));
    assert.deepEqual(received, sent); // one key, so one partition, so in order

    // The group committed what it consumed (kafkajs commits on stop), so a restart would resume after it.
    await consumer.disconnect();
    const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
    const committed = offsets.partitions.reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
    assert.equal(committed, sent.length);
  } finally {
    await consumer.disconnect().catch(() => {});
    await producer.disconnect().catch(() => {});
    await admin.deleteTopics({ topics: [topic] }).catch(() => {});
    await admin.disconnect().catch(() => {});
  }
});
