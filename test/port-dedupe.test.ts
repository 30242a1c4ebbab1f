// The Dedupe contract against the in-process map and the real Redis of test/stack.
import { EmbeddedDedupe } from '../broker/dedupe-embedded.ts';
import { RedisDedupe } from '../broker/dedupe-redis.ts';
import { dedupeContract } from './contracts/dedupe.ts';
import { redisSandbox } from './contracts/support.ts';

dedupeContract('embedded (in-process)', async () => {
  const dedupe = new EmbeddedDedupe();
  return { adapter: dedupe, cleanup: () => dedupe.close() };
});

dedupeContract('redis', async () => {
  const sandbox = await redisSandbox();
  return { adapter: new RedisDedupe(sandbox.client()), cleanup: () => sandbox.cleanup() };
});
