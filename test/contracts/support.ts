// What the port contract suites share: the fixture shape every adapter factory returns, the real servers'
// settings (a missing setting fails the suite, it never skips it), a Redis sandbox under a random key prefix,
// temporary data directories for the embedded adapters, and joined RPC endpoints for the cross-thread ones.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import { Redis } from 'ioredis';
import { createRedis } from '../../common/redis.ts';
import { RpcEndpoint } from '../../common/rpc.ts';
import { loadStackEnv } from '../stack/env.ts';

/** One adapter under test. `reopen` closes it and opens a new instance on the same storage. */
export interface Fixture<T> {
  adapter: T;
  reopen?: () => Promise<T>;
  cleanup(): Promise<void>;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
export const rand = (bytes = 4) => randomBytes(bytes).toString('hex');

/** The real servers' settings from .stack.env; throws naming every missing key. */
export function requireStack(keys: readonly string[]): Record<string, string> {
  const env = loadStackEnv();
  const missing = keys.filter((k) => !env[k]);
  if (missing.length > 0) {
    throw new Error(
      `the real-server contract suite needs ${missing.join(', ')} in .stack.env, which is missing them: ` +
        'start the servers with `npx tsx test/stack/cli.ts up --only redis,ldap` (npm test does this first)',
    );
  }
  return env;
}

export async function tempDir(label: string): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `parley-${label}-`));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

export interface RedisSandbox {
  url: string;
  /** Every key of this sandbox starts with it; `cleanup` deletes them all. */
  prefix: string;
  /** A new client as the app makes it (common/redis.ts), under the sandbox prefix. */
  client(): Redis;
  /** A new client without a key prefix, to see keys as operators see them. */
  raw(): Redis;
  cleanup(): Promise<void>;
}

export async function redisSandbox(): Promise<RedisSandbox> {
  const { PARLEY_REDIS_URL: url } = requireStack(['PARLEY_REDIS_URL']);
  const prefix = `parley-test:${rand(6)}:`;
  const clients: Redis[] = [];
  const track = (c: Redis) => (clients.push(c), c);
  const closeAll = () => Promise.all(clients.map((c) => c.quit().catch(() => c.disconnect())));
  const sandbox: RedisSandbox = {
    url,
    prefix,
    client: () => track(createRedis({ url, keyPrefix: prefix })),
    raw: () => track(new Redis(url, { maxRetriesPerRequest: 2 })),
    async cleanup() {
      const r = sandbox.raw();
      let cursor = '0';
      do {
        const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        if (keys.length > 0) await r.del(...keys);
        cursor = next;
      } while (cursor !== '0');
      await closeAll();
    },
  };
  try {
    await sandbox.raw().ping();
  } catch (err) {
    // ioredis keeps reconnecting in the background; stop it so the test process can exit.
    for (const c of clients) c.disconnect();
    throw new Error(`Redis at ${url} (from .stack.env) does not answer: ${(err as Error).message}; is the stack up?`);
  }
  return sandbox;
}

/**
 * Two RPC endpoints joined by a MessageChannel: what the broker thread and the consumer thread hold, with
 * the same structured cloning between them, in one thread so that a contract suite can drive both ends.
 */
export function rpcPair(): { serving: RpcEndpoint; calling: RpcEndpoint; close(): void } {
  const { port1, port2 } = new MessageChannel();
  const serving = new RpcEndpoint(port1);
  const calling = new RpcEndpoint(port2);
  return {
    serving,
    calling,
    close() {
      serving.close();
      calling.close();
      port1.close();
      port2.close();
    },
  };
}
