// Parley acks a message once Redis has answered its store, so Redis must put that write on disk before it
// answers (appendonly yes, appendfsync always). Against the test stack's real Redis: a Redis set so is
// fine, one that is not is named at start-up with what to change, and one that refuses CONFIG (a managed
// Redis) is taken on trust.
import assert from './helpers/assert.ts';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { startParley } from '../cli/server.ts';
import { loadConfig } from '../common/config.ts';
import { durabilityProblemOf, redisDurabilityProblem } from '../common/redis.ts';
import { testEnv } from './helpers/parley.ts';

const env = testEnv('real');

/** Runs `body` with Redis's appendfsync set to `policy`, and puts the stack's own back after. */
async function withAppendfsync(admin: Redis, policy: string, body: () => Promise<void>): Promise<void> {
  const [, before] = (await admin.config('GET', 'appendfsync')) as string[];
  await admin.config('SET', 'appendfsync', policy);
  try {
    await body();
  } finally {
    await admin.config('SET', 'appendfsync', before);
  }
}

test('redis durability: the test stack Redis (AOF, appendfsync always) keeps acked messages', async () => {
  const admin = new Redis(env.PARLEY_REDIS_URL);
  try {
    assert.equal(await redisDurabilityProblem(admin), null);
    await withAppendfsync(admin, 'everysec', async () => {
      const problem = await redisDurabilityProblem(admin);
      assert.match(problem ?? '', /appendfsync everysec: a crash of Redis can lose messages already acked; set appendfsync always/);
    });
    await withAppendfsync(admin, 'no', async () => assert.match((await redisDurabilityProblem(admin)) ?? '', /appendfsync no/));
    assert.equal(await redisDurabilityProblem(admin), null, 'the policy was put back');
  } finally {
    admin.disconnect();
  }
});

test('redis durability: a setting missing from the answer counts as not set, never as another value', () => {
  assert.equal(durabilityProblemOf(['appendonly', 'yes', 'appendfsync', 'always']), null);
  assert.equal(durabilityProblemOf(['appendfsync', 'always', 'appendonly', 'yes']), null, 'in any order');
  // Before, a missing name read the first entry of the answer as its value ("appendonly appendfsync").
  assert.match(durabilityProblemOf(['appendfsync', 'always']) ?? '', /appendonly \(unknown\)/);
  assert.match(durabilityProblemOf(['appendonly', 'yes']) ?? '', /appendfsync \(unknown\)/);
  assert.match(durabilityProblemOf([]) ?? '', /appendonly \(unknown\)/);
  // A value that happens to equal a name is not taken for one.
  assert.match(durabilityProblemOf(['appendfsync', 'appendonly', 'appendonly', 'yes']) ?? '', /appendfsync appendonly/);
});

test('redis durability: a Redis that refuses CONFIG is taken on trust', async () => {
  const admin = new Redis(env.PARLEY_REDIS_URL);
  const user = `durability-${randomBytes(4).toString('hex')}`;
  const password = randomBytes(8).toString('hex');
  await admin.acl('SETUSER', user, 'on', `>${password}`, '~*', '&*', '+@all', '-config');
  const url = new URL(env.PARLEY_REDIS_URL);
  url.username = user;
  url.password = password;
  const limited = new Redis(url.toString());
  try {
    await assert.rejects(limited.config('GET', 'appendfsync'), /NOPERM/);
    assert.equal(await redisDurabilityProblem(limited), null);
  } finally {
    limited.disconnect();
    await admin.acl('DELUSER', user);
    admin.disconnect();
  }
});

test('redis durability: Parley says at start-up when its Redis answers before the disk has the write', { timeout: 60_000 }, async () => {
  const admin = new Redis(env.PARLEY_REDIS_URL);
  const lines: { level: number; msg: string }[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  const start = async () => {
    lines.length = 0;
    const running = await startParley(loadConfig({ ...env, PARLEY_LOG_LEVEL: 'warn' }), pino({ level: 'warn' }, sink), ['broker']);
    await running.close();
    return lines.filter((l) => l.level === 40 && /appendfsync/.test(l.msg));
  };
  try {
    await withAppendfsync(admin, 'everysec', async () => {
      const warned = await start();
      assert.equal(warned.length, 1, JSON.stringify(lines));
      assert.match(warned[0].msg, /appendfsync everysec: a crash of Redis can lose messages already acked/);
    });
    assert.deepEqual(await start(), [], 'no warning under appendfsync always');
  } finally {
    admin.disconnect();
  }
});
