// The ClusterBus contract against the in-process hub and the real Redis of test/stack (pub/sub), and what
// only Redis does: after a lost connection it tells the node it is back (before anything new arrives), then
// reports the gap.
import assert from './helpers/assert.ts';
import { after, describe, it } from 'node:test';
import { EmbeddedClusterBus, EmbeddedClusterHub } from '../broker/cluster-bus-embedded.ts';
import { RedisClusterBus } from '../broker/cluster-bus-redis.ts';
import type { NodeMessage } from '../broker/cluster-bus.ts';
import { clusterBusContract } from './contracts/cluster-bus.ts';
import { redisSandbox, sleep } from './contracts/support.ts';

clusterBusContract('embedded (in-process hub)', async () => {
  const hub = new EmbeddedClusterHub();
  return { node: (id) => new EmbeddedClusterBus(id, hub), cleanup: async () => {} };
});

clusterBusContract('redis (pub/sub)', async () => {
  // Each deployment is a key prefix; each node its own connection, as separate processes would have.
  const sandbox = await redisSandbox();
  return { node: (id) => new RedisClusterBus(sandbox.client(), id), cleanup: () => sandbox.cleanup() };
});

describe('RedisClusterBus after a lost connection', () => {
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const c of cleanups) await c();
  });

  it('reports the gap once it is subscribed again, and hears what is sent from then on', async () => {
    const sandbox = await redisSandbox();
    const [a, b] = [new RedisClusterBus(sandbox.client(), 1), new RedisClusterBus(sandbox.client(), 2)];
    cleanups.push(async () => {
      await a.close();
      await b.close();
      await sandbox.cleanup();
    });
    await a.listen(() => {});
    const heard: NodeMessage[] = [];
    let gaps = 0;
    // Everything node 2 is told, in order: a message from the new connection must not come before onResume.
    const events: string[] = [];
    await b.listen(
      (m) => {
        heard.push(m);
        events.push('message');
      },
      {
        onGap: () => {
          gaps++;
          events.push('gap');
        },
        onResume: () => events.push('resume'),
      },
    );
    assert.equal(gaps, 0, 'the first subscribe is no gap');

    // Kill node 2's subscriber connection on the server, as a network cut or Redis's output-buffer limit would.
    const raw = sandbox.raw();
    const list = (await raw.client('LIST')) as string;
    const name = `parley-bus-${sandbox.prefix}2`.replace(/[^\w:.-]/g, '_');
    const line = list.split('\n').find((l) => l.includes(` name=${name} `)) ?? assert.fail(`no connection named ${name}`);
    await raw.client('KILL', 'ID', /id=(\d+)/.exec(line)![1]);

    // Node 1 keeps sending through the reconnect: some of it reaches node 2 before its own SUBSCRIBE is answered.
    const end = Date.now() + 10_000;
    let sent = 0;
    while (gaps === 0 && Date.now() < end) {
      await a.send(2, { type: 'logout', tokenHash: `during ${sent++}` });
      await sleep(1);
    }
    assert.equal(gaps, 1, 'the gap is reported once');
    assert.equal(events[0], 'resume', `onResume comes before anything of the new connection: ${events.slice(0, 5).join(', ')}`);
    assert.deepEqual(events.filter((e) => e !== 'message'), ['resume', 'gap'], 'one resume, then one gap');
    await a.send(2, { type: 'logout', tokenHash: 'after the gap' });
    const after = (m: NodeMessage) => m.type === 'logout' && m.tokenHash === 'after the gap';
    while (!heard.some(after) && Date.now() < end) await sleep(10);
    assert.deepEqual(heard.at(-1), { type: 'logout', tokenHash: 'after the gap' }, 'subscribed again when the gap is reported');
  });
});
