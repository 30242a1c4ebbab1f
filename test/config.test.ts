// Settings checked together at start-up: a combination that cannot work is refused with a clear error.
import assert from './helpers/assert.ts';
import { test } from 'node:test';
import { ConfigError, KAFKA_MAX_RECORD_BYTES, loadConfig } from '../common/config.ts';
import { maxPayloadBytes } from '../common/envelope.ts';

test('config: with Kafka, a body limit or group size whose event-log records Kafka would refuse is refused', () => {
  const base = { PARLEY_DATA_DIR: '/tmp/unused', PARLEY_KAFKA_BROKERS: '127.0.0.1:9092' };
  assert.equal(loadConfig(base).maxBodyBytes, 65536, 'the defaults fit');
  const fits = Math.floor((KAFKA_MAX_RECORD_BYTES - 1024 - 1024 * 35 - maxPayloadBytes(0)) / 6);
  assert.equal(loadConfig({ ...base, PARLEY_MAX_BODY_BYTES: String(fits) }).maxBodyBytes, fits, 'the largest body that fits');
  for (const over of [{ PARLEY_MAX_BODY_BYTES: String(fits + 1) }, { PARLEY_MAX_BODY_BYTES: String(1024 * 1024) }, { PARLEY_GROUP_MAX_MEMBERS: '100000' }]) {
    assert.throws(
      () => loadConfig({ ...base, ...over }),
      (err: unknown) => err instanceof ConfigError && /PARLEY_MAX_BODY_BYTES .* PARLEY_GROUP_MAX_MEMBERS .* message\.max\.bytes/.test((err as Error).message),
      JSON.stringify(over),
    );
  }
  // Without Kafka (the embedded event log) there is no such limit.
  assert.equal(loadConfig({ PARLEY_DATA_DIR: '/tmp/unused', PARLEY_MAX_BODY_BYTES: String(1024 * 1024) }).maxBodyBytes, 1024 * 1024);
});
