// Redis 7 from Debian's redis-server, on 127.0.0.1:16379 with AOF fsync'd on every write, so that
// the no-loss tests can kill any process after an ack.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { StackContext, StackService } from './service.ts';
import { aptInstall } from './apt.ts';
import { hasCommand, run } from './commands.ts';
import { spawnDetached } from './processes.ts';

const port = 16379;
const host = '127.0.0.1';

function config(dir: string): string {
  return [
    `bind ${host}`,
    `port ${port}`,
    'protected-mode yes',
    'daemonize no',
    'logfile ""', // stdout, which is .stack/redis.log
    `dir ${dir}`,
    'appendonly yes',
    'appendfsync always',
    'save ""', // the AOF is the only persistence; no background RDB forks competing for 2 cores
    'maxmemory-policy noeviction',
    '',
  ].join('\n');
}

export const redis: StackService = {
  name: 'redis',

  async install(ctx) {
    if (!hasCommand('redis-server')) await aptInstall(ctx, { packages: ['redis-server'] });
    const version = await run('redis-server', ['--version']);
    const major = Number(/v=(\d+)\./.exec(version)?.[1]);
    if (!(major >= 7)) throw new Error(`redis-server 7 or later needed, found: ${version.trim()}`);
  },

  async start(ctx) {
    const dir = join(ctx.runDir, 'redis');
    mkdirSync(dir, { recursive: true });
    const conf = join(dir, 'redis.conf');
    writeFileSync(conf, config(dir));
    await spawnDetached(ctx, 'redis', 'redis-server', [conf], { cwd: dir });
  },

  async healthy() {
    const client = new Redis({
      host,
      port,
      lazyConnect: true,
      connectTimeout: 1000,
      commandTimeout: 1000,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null,
    });
    client.on('error', () => {});
    try {
      await client.connect();
      return (await client.ping()) === 'PONG'; // refused with LOADING while the AOF replays
    } catch {
      return false;
    } finally {
      client.disconnect();
    }
  },

  env(_ctx: StackContext) {
    return { PARLEY_REDIS_URL: `redis://${host}:${port}` };
  },
};
