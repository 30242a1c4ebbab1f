// The Throttle contract against the in-process map and the real Redis of test/stack.
import { EmbeddedThrottle } from '../auth/throttle-embedded.ts';
import { RedisThrottle } from '../auth/throttle-redis.ts';
import { redisSandbox } from './contracts/support.ts';
import { throttleContract } from './contracts/throttle.ts';

throttleContract('embedded (in-process)', async () => {
  const throttle = new EmbeddedThrottle();
  return { adapter: throttle, cleanup: () => throttle.close() };
});

throttleContract('redis', async () => {
  const sandbox = await redisSandbox();
  return { adapter: new RedisThrottle(sandbox.client()), cleanup: () => sandbox.cleanup() };
});
