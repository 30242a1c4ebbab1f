// The TokenStore contract against the in-process map and the real Redis of test/stack.
import assert from './helpers/assert.ts';
import { it } from 'node:test';
import { EmbeddedTokenStore } from '../auth/token-store-embedded.ts';
import { RedisTokenStore } from '../auth/token-store-redis.ts';
import { hashToken, newToken, TOKEN_PREFIX } from '../auth/token-store.ts';
import { redisSandbox } from './contracts/support.ts';
import { tokenStoreContract } from './contracts/token-store.ts';

tokenStoreContract('embedded (in-process)', async () => {
  const store = new EmbeddedTokenStore();
  return { adapter: store, cleanup: () => store.close() };
});

tokenStoreContract('redis', async () => {
  const sandbox = await redisSandbox();
  return { adapter: new RedisTokenStore(sandbox.client()), cleanup: () => sandbox.cleanup() };
});

it('newToken is unguessable and hashToken is its stable SHA-256', () => {
  const tokens = new Set(Array.from({ length: 100 }, newToken));
  assert.equal(tokens.size, 100);
  for (const t of tokens) assert.match(t, new RegExp(`^${TOKEN_PREFIX}[A-Za-z0-9_-]{43}$`));
  const [t] = tokens;
  assert.match(hashToken(t), /^[0-9a-f]{64}$/);
  assert.equal(hashToken(t), hashToken(t));
  assert.notEqual(hashToken(t), hashToken(t + 'x'));
  assert.equal(hashToken('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});
