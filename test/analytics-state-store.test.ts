// The embedded StateStore's own expiry, beyond the port's contract (test/contracts/state-store.ts, run by
// port-state-store.test.ts): its sweep drops partials after PARTIAL_TTL_SECONDS, never checkpoints.
import assert from './helpers/assert.ts';
import { describe, it } from 'node:test';
import { EmbeddedStateStore } from '../analytics/state-store-embedded.ts';
import { PARTIAL_TTL_SECONDS } from '../analytics/state-store.ts';
import { tempDir } from './contracts/support.ts';

const W = Date.UTC(2025, 0, 1, 12, 0, 0);

describe('analytics StateStore, embedded expiry', () => {
  it(`sweeps partials ${PARTIAL_TTL_SECONDS / 86400} days after their last write, never checkpoints`, async () => {
    const tmp = await tempDir('analytics-sweep');
    const store = new EmbeddedStateStore(tmp.dir, { fsync: false });
    try {
      await store.putCheckpoint('traffic', 0, '{}');
      await store.putPartials([{ job: 'traffic', windowMs: 60_000, windowStart: W, partition: 0, value: '{}' }]);
      assert.equal(await store.sweep(), 0);
      assert.equal(await store.sweep(Date.now() + PARTIAL_TTL_SECONDS * 1000 + 1000), 1);
      assert.deepEqual(await store.partials('traffic', 60_000, W), []);
      assert.equal(await store.checkpoint('traffic', 0), '{}');
    } finally {
      await store.close();
      await tmp.remove();
    }
  });
});
