// The ClusterBus contract: a message reaches the node it names and no other, in the order sent; a broadcast
// reaches every other node; nodes that do not listen (down, closed, another deployment) hear nothing.
import assert from '../helpers/assert.ts';
import { after, describe, it } from 'node:test';
import type { ClusterBus, NodeMessage } from '../../broker/cluster-bus.ts';
import { sleep } from './support.ts';

/** One deployment's nodes: `node(id)` is a new bus for that node id, on the deployment's shared transport. */
export interface BusCluster {
  node(id: number): ClusterBus;
  cleanup(): Promise<void>;
}

interface Heard {
  message: NodeMessage;
  from: number;
}

/** A listening node and everything it heard. */
async function listening(bus: ClusterBus): Promise<Heard[]> {
  const heard: Heard[] = [];
  await bus.listen((message, from) => heard.push({ message, from }));
  return heard;
}

async function until(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Long enough for a message that was going to arrive to have arrived. */
const settle = () => sleep(150);

export function clusterBusContract(name: string, makeCluster: () => Promise<BusCluster>): void {
  describe(`ClusterBus contract: ${name}`, () => {
    const clusters: BusCluster[] = [];
    const buses: ClusterBus[] = [];
    const cluster = async () => {
      const c = await makeCluster();
      clusters.push(c);
      return { node: (id: number) => (buses.push(c.node(id)), buses.at(-1)!) };
    };
    after(async () => {
      for (const b of buses) await b.close();
      for (const c of clusters) await c.cleanup();
    });

    it('a message reaches the node it names, intact, with the sender node, and no other node', async () => {
      const c = await cluster();
      const [a, b, other] = [c.node(1), c.node(2), c.node(3)];
      const [, toB, toOther] = [await listening(a), await listening(b), await listening(other)];
      const text = '{"id":"1","body":"h\\u00e9llo \\"quoted\\" \\n 🎉 \\\\ end"}';
      const message: NodeMessage = { type: 'deliver', user: 'bob', id: '123', text, queued: true, qos: 1 };
      assert.equal(a.nodeId, 1);
      await a.send(2, message);
      await until(() => toB.length === 1, 'the message at node 2');
      assert.deepEqual(toB[0], { message, from: 1 });
      await settle();
      assert.equal(toOther.length, 0, 'node 3 was not named');
      assert.equal(toB.length, 1, 'delivered once');
    });

    it('keeps the order of what one node sends to another', async () => {
      const c = await cluster();
      const [a, b] = [c.node(1), c.node(2)];
      await listening(a);
      const heard = await listening(b);
      const n = 2000;
      for (let i = 0; i < n; i++) void a.send(2, { type: 'deliver', user: 'u', id: String(i), text: `m${i}`, queued: false, qos: 0 });
      await until(() => heard.length === n, `${n} messages`);
      assert.deepEqual(
        heard.map((h) => (h.message as { id: string }).id),
        Array.from({ length: n }, (_, i) => String(i)),
      );
    });

    it('a broadcast reaches every other node once, and not the sender', async () => {
      const c = await cluster();
      const nodes = [c.node(1), c.node(2), c.node(5)];
      const heard = await Promise.all(nodes.map(listening));
      const message: NodeMessage = { type: 'presence', user: 'carol', state: 'online', ts: 1700000000000 };
      await nodes[1].broadcast(message);
      await until(() => heard[0].length === 1 && heard[2].length === 1, 'the broadcast at nodes 1 and 5');
      await settle();
      assert.deepEqual(heard[0], [{ message, from: 2 }]);
      assert.deepEqual(heard[2], [{ message, from: 2 }]);
      assert.deepEqual(heard[1], [], 'the sender does not hear itself');
    });

    it('a node that is not listening misses what was sent, without an error for the sender, and a closed node hears nothing more', async () => {
      const c = await cluster();
      const [a, b] = [c.node(1), c.node(2)];
      await listening(a);
      await a.send(2, { type: 'logout', tokenHash: 'before' });
      await a.send(9, { type: 'logout', tokenHash: 'nobody' });
      await settle();
      const heard = await listening(b);
      await a.send(2, { type: 'logout', tokenHash: 'after' });
      await until(() => heard.length === 1, 'the message sent after listen');
      assert.deepEqual(heard, [{ message: { type: 'logout', tokenHash: 'after' }, from: 1 }], 'what was sent before listening is gone');

      await b.close();
      await a.send(2, { type: 'logout', tokenHash: 'closed' });
      await a.broadcast({ type: 'logout', tokenHash: 'closed-all' });
      await settle();
      assert.equal(heard.length, 1, 'nothing after close');

      // The node comes back (a restart) under the same id and hears what is sent from then on.
      const back = c.node(2);
      const heardBack = await listening(back);
      await a.send(2, { type: 'logout', tokenHash: 'restarted' });
      await until(() => heardBack.length === 1, 'the message at the restarted node');
      assert.deepEqual(heardBack[0].message, { type: 'logout', tokenHash: 'restarted' });
    });

    it('a handler that throws is reported to onError, and the node goes on hearing', async () => {
      const c = await cluster();
      const [a, b] = [c.node(1), c.node(2)];
      await listening(a);
      const heard: string[] = [];
      const errors: unknown[] = [];
      await b.listen((message) => {
        const hash = (message as { tokenHash: string }).tokenHash;
        if (hash === 'bad') throw new Error('handler failed');
        heard.push(hash);
      }, { onError: (err) => errors.push(err) });
      for (const tokenHash of ['one', 'bad', 'two']) await a.send(2, { type: 'logout', tokenHash });
      await until(() => heard.length === 2, 'the messages around the failing one');
      assert.deepEqual(heard, ['one', 'two']);
      assert.equal(errors.length, 1);
      assert.match((errors[0] as Error).message, /handler failed/);
    });

    it('two deployments never hear each other, even with the same node ids', async () => {
      const [one, two] = [await cluster(), await cluster()];
      const [a1, b1, a2, b2] = [one.node(1), one.node(2), two.node(1), two.node(2)];
      const heard = await Promise.all([a1, b1, a2, b2].map(listening));
      await a1.send(2, { type: 'logout', tokenHash: 'one' });
      await a1.broadcast({ type: 'logout', tokenHash: 'one-all' });
      await until(() => heard[1].length === 2, 'both messages in deployment one');
      await settle();
      assert.deepEqual(heard[2], [], 'deployment two, node 1');
      assert.deepEqual(heard[3], [], 'deployment two, node 2');
    });
  });
}
