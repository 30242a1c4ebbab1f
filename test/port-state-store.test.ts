// The analytics StateStore contract against the embedded LevelDB store and the real HBase of test/stack (a
// random namespace per run, dropped at the end).
import { EmbeddedStateStore } from '../analytics/state-store-embedded.ts';
import { HBaseStateStore } from '../analytics/state-store-hbase.ts';
import { stateStoreContract } from './contracts/state-store.ts';
import { rand, requireStack, tempDir } from './contracts/support.ts';

stateStoreContract('embedded (LevelDB)', async () => {
  const tmp = await tempDir('analytics-state');
  const store = new EmbeddedStateStore(tmp.dir, { fsync: false });
  return {
    adapter: store,
    async cleanup() {
      await store.close();
      await tmp.remove();
    },
  };
});

stateStoreContract('hbase (Thrift2)', async () => {
  const env = requireStack(['PARLEY_HBASE_HOST', 'PARLEY_HBASE_PORT', 'PARLEY_HBASE_TRANSPORT']);
  const store = new HBaseStateStore({ host: env.PARLEY_HBASE_HOST, port: Number(env.PARLEY_HBASE_PORT), transport: env.PARLEY_HBASE_TRANSPORT as 'framed', namespace: `ts${rand(4)}` });
  return {
    adapter: store,
    async cleanup() {
      await store.dropSchema();
      await store.close();
    },
  };
});
