// The ClusterBus contract against the in-process hub and the real Redis of test/stack (pub/sub).
import { EmbeddedClusterBus, EmbeddedClusterHub } from '../broker/cluster-bus-embedded.ts';
import { RedisClusterBus } from '../broker/cluster-bus-redis.ts';
import { clusterBusContract } from './contracts/cluster-bus.ts';
import { redisSandbox } from './contracts/support.ts';

clusterBusContract('embedded (in-process hub)', async () => {
  const hub = new EmbeddedClusterHub();
  return { node: (id) => new EmbeddedClusterBus(id, hub), cleanup: async () => {} };
});

clusterBusContract('redis (pub/sub)', async () => {
  // Each deployment is a key prefix; each node its own connection, as separate processes would have.
  const sandbox = await redisSandbox();
  return { node: (id) => new RedisClusterBus(sandbox.client(), id), cleanup: () => sandbox.cleanup() };
});
