// A device's queue drain and live deliveries, in order (broker/devices.ts): the queue first, then what arrived
// live meanwhile, each id once; after hold() (the cluster bus came back), live deliveries wait for the next
// drain so they cannot overtake what the node missed. On the real embedded offline queue; the MQTT client is
// a recorder of what the device writes to it.
import assert from './helpers/assert.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Client } from 'aedes';
import { Device, type Delivery } from '../broker/devices.ts';
import { EmbeddedOfflineQueue } from '../broker/offline-queue-embedded.ts';
import { Journal } from '../common/journal.ts';

/** A device of `user` whose client records the ids written to it, in order. */
function recordingDevice(user: string): { device: Device; written: string[] } {
  const written: string[] = [];
  const record = (packet: { payload: Buffer }) => written.push(JSON.parse(packet.payload.toString()).id as string);
  const client = { id: `${user}-phone`, connected: true, deliverQoS: record, deliver0: record };
  const device = new Device(1, user, client as unknown as Client, 'tcp');
  device.inboxQos = 1;
  return { device, written };
}

const message = (id: string) => ({ id, payload: JSON.stringify({ id }) });
const live = (id: string): Delivery => ({ id, text: JSON.stringify({ id }), payload: Buffer.from(JSON.stringify({ id })), queued: true, qos: 1 });

describe('device drain and live deliveries', () => {
  let dir: string;
  let journal: Journal;
  let queue: EmbeddedOfflineQueue;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-drain-'));
    journal = Journal.open(dir, 1, true);
    queue = new EmbeddedOfflineQueue(journal, 1, 10_000);
  });
  after(async () => {
    await queue.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A user of this test alone, with `ids` in their queue. */
  let users = 0;
  const queued = async (ids: string[]) => {
    const user = `u${++users}`;
    await queue.push(ids.map((id) => ({ userId: user, message: message(id) })));
    return user;
  };

  it('sends the queue, then what arrived live during the read, each id once', async () => {
    const { device, written } = recordingDevice(await queued(['1', '2', '3']));
    const draining = device.drain(queue, 100);
    // Arrive while the queue is being read: 3 is queued already, 4 is not.
    device.deliver(live('3'));
    device.deliver(live('4'));
    await draining;
    assert.deepEqual(written, ['1', '2', '3', '4']);
    // Live again, and a late copy of a drained message is not sent twice.
    device.deliver(live('2'));
    device.deliver(live('5'));
    assert.deepEqual(written, ['1', '2', '3', '4', '5']);
  });

  it('after hold(), live deliveries wait for the next drain and follow the queue it reads', async () => {
    // Messages 1-3 were missed live (the bus was down) but are queued; 4 and 5 arrive live after the bus is back.
    const { device, written } = recordingDevice(await queued(['1', '2', '3', '4']));
    device.hold();
    device.deliver(live('4'));
    device.deliver(live('5'));
    assert.deepEqual(written, [], 'nothing overtakes the re-read');
    await device.drain(queue, 100);
    assert.deepEqual(written, ['1', '2', '3', '4', '5']);
    device.deliver(live('6'));
    assert.deepEqual(written, ['1', '2', '3', '4', '5', '6'], 'live again after the drain');
  });

  it('a drain asked for during another reads the queue again before it lets the held ones go', async () => {
    const user = await queued(['1']);
    const { device, written } = recordingDevice(user);
    // Reads that take a turn of the event loop, as Redis's do: a store handed over meanwhile is written
    // (and shows in the queue) before the next read.
    const slowQueue = Object.assign(Object.create(queue) as EmbeddedOfflineQueue, {
      list: async (userId: string, limit: number) => {
        await new Promise((resolve) => setImmediate(resolve));
        return queue.list(userId, limit);
      },
    });
    const first = device.drain(slowQueue, 100);
    // While the first read is under way, 2 is stored and the bus comes back; 3 arrives live after that.
    const stored = queue.push([{ userId: user, message: message('2') }]);
    device.hold();
    const second = device.drain(slowQueue, 100);
    device.deliver(live('3'));
    await Promise.all([first, second, stored]);
    assert.deepEqual(written, ['1', '2', '3']);
  });

  it('a held late copy of what an earlier drain sent (and the device acked since) is not sent again', async () => {
    const user = await queued(['1']);
    const { device, written } = recordingDevice(user);
    await device.drain(queue, 100);
    // The device PUBACKs it (packet id 1, its first), and it leaves the queue.
    assert.equal(device.acked(1)?.id, '1');
    await queue.remove(user, message('1'));
    device.hold();
    device.deliver(live('1'));
    device.deliver(live('2'));
    await device.drain(queue, 100);
    assert.deepEqual(written, ['1', '2']);
  });

  it('lets the held deliveries go when the queue cannot be read', async () => {
    const { device, written } = recordingDevice('nobody');
    const broken = { list: () => Promise.reject(new Error('queue unreachable')) } as unknown as EmbeddedOfflineQueue;
    device.hold();
    device.deliver(live('7'));
    await assert.rejects(device.drain(broken, 100), /queue unreachable/);
    assert.deepEqual(written, ['7']);
    device.deliver(live('8'));
    assert.deepEqual(written, ['7', '8']);
  });
});
