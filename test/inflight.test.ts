// The in-flight table of a device (broker/inflight.ts): the same answers as a Map of packet id to delivery,
// through growth, wrap-around of the ids and an emptied big table, and no new storage per message.
import assert from './helpers/assert.ts';
import { describe, it } from 'node:test';
import { InflightTable } from '../broker/inflight.ts';

/** A small, seeded generator: the same sequence in every run, so a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function sameAs(table: InflightTable<string>, model: Map<number, string>, where: string): void {
  assert.equal(table.size, model.size, `${where}: size`);
  assert.deepEqual([...table.values()].sort(), [...model.values()].sort(), `${where}: values`);
  for (const [id, v] of model) {
    assert.equal(table.has(id), true, `${where}: has ${id}`);
    assert.equal(table.get(id), v, `${where}: get ${id}`);
  }
}

describe('InflightTable', () => {
  it('keeps what is set, answers has/get/take like a Map, and forgets what was taken', () => {
    const t = new InflightTable<string>();
    assert.equal(t.size, 0);
    assert.equal(t.has(1), false);
    assert.equal(t.take(1), undefined, 'nothing to take');
    t.set(1, 'a');
    t.set(9, 'b'); // the same slot as 1 at the initial capacity of 8: the table grows
    t.set(2, 'c');
    assert.equal(t.size, 3);
    assert.equal(t.get(9), 'b');
    assert.equal(t.has(17), false, 'an id sharing a slot with one in flight is not in flight');
    assert.equal(t.get(17), undefined);
    t.set(9, 'b2');
    assert.equal(t.size, 3, 'setting an id in flight again replaces it');
    assert.equal(t.take(9), 'b2');
    assert.equal(t.take(9), undefined, 'taken once');
    assert.equal(t.has(9), false);
    assert.deepEqual([...t.values()].sort(), ['a', 'c']);
  });

  it('refuses what is not a packet id, and a PUBACK of one changes nothing', () => {
    const t = new InflightTable<string>();
    for (const id of [0, -1, 65536, 1.5, NaN]) assert.throws(() => t.set(id, 'x'), /not an MQTT packet id/, String(id));
    assert.equal(t.size, 0);
    // 1,500 in flight (the table grows to 2,048 slots), 1,000 acked; then PUBACKs of id 0 and others that
    // are no packet id: an empty slot holds 0, and must not be taken for one.
    for (let id = 1; id <= 1500; id++) t.set(id, `m${id}`);
    for (let id = 1; id <= 1000; id++) t.take(id);
    for (let i = 0; i < 600; i++) for (const bad of [0, -1, 65536, 70000, 2.5]) assert.equal(t.take(bad), undefined);
    assert.equal(t.has(0), false);
    assert.equal(t.get(0), undefined);
    assert.equal(t.size, 500, 'the 500 still in flight are counted');
    for (let id = 1001; id <= 1500; id++) assert.equal(t.take(id), `m${id}`, `${id} is still there`);
    assert.equal(t.size, 0);
  });

  it('holds every packet id at once', () => {
    const t = new InflightTable<string>();
    for (let id = 1; id <= 65535; id++) t.set(id, `m${id}`);
    assert.equal(t.size, 65535);
    assert.equal(t.get(1), 'm1');
    assert.equal(t.get(65535), 'm65535');
    for (let id = 1; id <= 65535; id++) assert.equal(t.take(id), `m${id}`);
    assert.equal(t.size, 0);
    t.set(7, 'again');
    assert.equal(t.get(7), 'again', 'usable after it went back to its first size');
  });

  it('agrees with a Map through random sends and acks, in order and out of it, across the wrap of the ids', () => {
    const random = rng(42);
    const t = new InflightTable<string>();
    const model = new Map<number, string>();
    let next = 65000; // wraps to 1 after 65535, as the device's ids do
    for (let step = 0; step < 20_000; step++) {
      const r = random();
      if (r < 0.5 || model.size === 0) {
        // A send: the next id not in flight, as Device.allocate() picks it.
        while (model.has(next)) next = next === 65535 ? 1 : next + 1;
        assert.equal(t.has(next), false, `step ${step}: ${next} is free`);
        t.set(next, `v${step}`);
        model.set(next, `v${step}`);
        next = next === 65535 ? 1 : next + 1;
      } else {
        // An ack: mostly the oldest (PUBACKs come in order), sometimes any, sometimes one never sent.
        const ids = [...model.keys()];
        const id = r < 0.85 ? ids[0] : r < 0.97 ? ids[Math.floor(random() * ids.length)] : 1 + Math.floor(random() * 65535);
        assert.equal(t.take(id), model.get(id), `step ${step}: take ${id}`);
        model.delete(id);
      }
      if (step % 997 === 0) sameAs(t, model, `step ${step}`);
    }
    sameAs(t, model, 'end');
  });

  it('allocates nothing per message once it has its size', () => {
    const t = new InflightTable<string>();
    const payload = 'x';
    // One in flight at a time, ids in sequence: the table keeps its first storage.
    const storage = () => (t as unknown as { ids: Uint16Array }).ids;
    const first = storage();
    for (let id = 1; id <= 65535; id++) {
      t.set(id, payload);
      assert.equal(t.take(id), payload);
    }
    assert.equal(storage(), first, 'the same storage after 65,535 messages');
  });
});
