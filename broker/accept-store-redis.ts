import type { Redis } from 'ioredis';
import { TurnBatch } from '../common/turn-batch.ts';
import type { AcceptStore, AcceptWrite, Stored } from './accept-store.ts';
import { encodeQueued, queueKey } from './offline-queue-redis.ts';
import { outboxKey, outboxRow } from './outbox-redis.ts';

// The stores of one event-loop turn, in call order, in one script call (TurnBatch). Each message is stored
// as before: its claim `dedupe:{sender}:{cid}` SET NX GET; when the cid is new, its outbox rows and one
// row per recipient queue (trimmed to the queue max); when it was claimed before, nothing, and the
// earlier claim is its answer. A later message of the batch sees an earlier one's claim.
// KEYS: the outbox list, then per message its claim key and its queue keys.
// ARGV: queue max, then per message: claim value, ttl, number of outbox rows, number of queues, the
// outbox rows, the queue rows.
// Answers, one per message: '' (stored), '=' and the earlier claim, or '!' and the error that stopped
// that message before it wrote anything (a queue key of the wrong type, say): the messages around it are
// stored all the same.
// A script runs atomically and its writes reach the AOF together (fsync'd before the reply under
// `appendfsync always`), so no claim is ever durable without its store. With the shebang, Redis refuses
// the script before it runs while it is out of memory. SET NX GET needs Redis ≥ 7.
const STORE = `#!lua
local max = tonumber(ARGV[1])
local k, a = 2, 2
local answers = {}
local m = 0
local function list(key)
  local t = redis.call('TYPE', key).ok
  if t ~= 'list' and t ~= 'none' then error('WRONGTYPE ' .. key .. ' holds a ' .. t .. ', not a list') end
end
local function store(claimKey, claim, ttl, rows, queues, k, a)
  -- Checked before anything is written, so a message is stored whole or not at all.
  if rows > 0 then list(KEYS[1]) end
  for i = 0, queues - 1 do list(KEYS[k + i]) end
  local earlier = redis.call('SET', claimKey, claim, 'EX', ttl, 'NX', 'GET')
  if earlier then return '=' .. earlier end
  for i = 0, rows - 1 do redis.call('RPUSH', KEYS[1], ARGV[a + i]) end
  for i = 0, queues - 1 do
    redis.call('RPUSH', KEYS[k + i], ARGV[a + rows + i])
    redis.call('LTRIM', KEYS[k + i], -max, -1)
  end
  return ''
end
while a <= #ARGV do
  m = m + 1
  local rows, queues = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local ok, answer = pcall(store, KEYS[k], ARGV[a], ARGV[a + 1], rows, queues, k + 1, a + 4)
  if ok then answers[m] = answer else answers[m] = '!' .. tostring(answer.err or answer) end
  k, a = k + 1 + queues, a + 4 + rows + queues
end
return answers
`;

type Scripts = {
  acceptStore(numberOfKeys: number, ...keysAndArgs: (string | number)[]): Promise<string[]>;
};

/** Uses the key layout of RedisOfflineQueue and RedisOutbox (README, "Redis keys"), which read what it writes. */
export class RedisAcceptStore implements AcceptStore {
  readonly adapter = 'redis';
  private readonly outbox: string;
  private readonly r: Redis & Scripts;
  private readonly batch = new TurnBatch<AcceptWrite, string | null>((writes) => this.storeAll(writes));

  constructor(
    redis: Redis,
    nodeId: number,
    private readonly max: number,
  ) {
    this.outbox = outboxKey(nodeId);
    // No numberOfKeys: it varies with the batch and is passed first on each call.
    redis.defineCommand('acceptStore', { lua: STORE });
    this.r = redis as Redis & Scripts;
  }

  /** One reply for both stages: Redis answers once the script's writes are in its AOF (fsync'd first under `always`). */
  store(w: AcceptWrite): Stored {
    const reply = this.batch.add(w);
    return { written: reply, durable: reply };
  }

  private storeAll(writes: readonly AcceptWrite[]): Promise<(string | null | Error)[]> {
    const keys: string[] = [this.outbox];
    const args: (string | number)[] = [this.max];
    for (const w of writes) {
      keys.push(dedupeKey(w.sender, w.cid));
      for (const q of w.queue) keys.push(queueKey(q.userId));
      args.push(w.claim, w.ttlSeconds, w.outbox.length, w.queue.length);
      for (const r of w.outbox) args.push(outboxRow(r));
      for (const q of w.queue) args.push(encodeQueued(q.message));
    }
    return this.r.acceptStore(keys.length, ...keys, ...args).then((answers) => answers.map(answer));
  }

  /** Sends what this turn gathered now, ahead of whatever the caller does to the connection next (QUIT). */
  async close(): Promise<void> {
    this.batch.flush();
  }
}

/** A message's answer from the script: no earlier claim (stored), the earlier claim, or why it was refused. */
function answer(a: string): string | null | Error {
  if (a === '') return null;
  if (a[0] === '=') return a.slice(1);
  return new Error(`Redis refused the store: ${a.slice(1)}`);
}

export const dedupeKey = (sender: string, cid: string) => `dedupe:${sender}:${cid}`;
