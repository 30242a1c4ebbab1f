// Proves that the HBase and MinIO of test/stack are the real things: an HBase put, get and scan
// through the Thrift2 gateway, and a MinIO put with a presigned GET. Settings come from
// <repo>/.stack.env (written by `npm run stack:up`); without them the tests are skipped.
import { test } from 'node:test';
import assert from './helpers/assert.ts';
import { randomBytes } from 'node:crypto';
import * as Minio from 'minio';
import { cellValue, connect, tableName, type HBaseTransport } from '../common/hbase/client.ts';
import { loadStackEnv } from './stack/env.ts';

const settings: Record<string, string | undefined> = { ...loadStackEnv(), ...process.env };

const hbaseConfigured = Boolean(settings.PARLEY_HBASE_HOST && settings.PARLEY_HBASE_PORT);
const s3Configured = Boolean(settings.PARLEY_S3_ENDPOINT && settings.PARLEY_S3_ACCESS_KEY);

test('HBase through Thrift2: create table, put, get, scan, delete', { skip: !hbaseConfigured && 'no PARLEY_HBASE_* (run npm run stack:up)' }, async () => {
  const transport = (settings.PARLEY_HBASE_TRANSPORT ?? 'framed') as HBaseTransport;
  const hbase = await connect(settings.PARLEY_HBASE_HOST!, Number(settings.PARLEY_HBASE_PORT), transport);
  try {
    const spec = { namespace: 'parley_smoke', table: 'rows', families: ['m', { name: 'x', maxVersions: 3 }] };
    await hbase.createTableIfMissing(spec);
    assert.equal(await hbase.createTableIfMissing(spec), false, 'a second create finds the table');
    const table = tableName(spec.namespace, spec.table);

    // A fresh prefix per run, so rows of earlier runs never match.
    const prefix = `run-${Date.now()}-${randomBytes(4).toString('hex')}:`;
    const bodies = new Map(['a', 'b', 'c'].map((k) => [`${prefix}${k}`, randomBytes(32)]));
    for (const [row, body] of bodies) {
      await hbase.put(table, row, [
        { family: 'm', qualifier: 'body', value: body },
        { family: 'm', qualifier: 'from', value: 'alice' },
      ]);
    }
    await hbase.putMany(table, [{ row: `${prefix}d`, cells: [{ family: 'x', qualifier: Buffer.from([0, 255]), value: 'binary qualifier' }] }]);

    const got = await hbase.get(table, `${prefix}b`);
    assert.ok(got, 'row b exists');
    assert.deepEqual(cellValue(got, 'm', 'body'), bodies.get(`${prefix}b`));
    assert.equal(cellValue(got, 'm', 'from')?.toString(), 'alice');
    assert.ok(got.cells.every((c) => c.timestamp > 1_600_000_000_000), 'cells carry millisecond timestamps');
    assert.equal(await hbase.get(table, `${prefix}nope`), undefined);
    const onlyBody = await hbase.get(table, `${prefix}b`, ['m:body']);
    assert.deepEqual(onlyBody?.cells.map((c) => c.qualifier.toString()), ['body']);

    // ';' sorts right after ':', so [prefix, prefix;) is exactly this run's rows.
    const stop = prefix.slice(0, -1) + ';';
    const all = await hbase.scan(table, { startRow: prefix, stopRow: stop });
    assert.deepEqual(all.map((r) => r.row.toString()), ['a', 'b', 'c', 'd'].map((k) => prefix + k));
    assert.deepEqual(cellValue(all[3], 'x', Buffer.from([0, 255]))?.toString(), 'binary qualifier');

    const firstTwo = await hbase.scan(table, { startRow: prefix, stopRow: stop, limit: 2 });
    assert.deepEqual(firstTwo.map((r) => r.row.toString()), [`${prefix}a`, `${prefix}b`]);

    // Reversed: start at the high end (inclusive), stop at the low end (exclusive).
    const newestFirst = await hbase.scan(table, { startRow: stop, stopRow: prefix, reversed: true, limit: 3, columns: ['m'] });
    assert.deepEqual(newestFirst.map((r) => r.row.toString()), ['c', 'b', 'a'].map((k) => prefix + k));

    await hbase.deleteRow(table, `${prefix}a`);
    assert.equal(await hbase.get(table, `${prefix}a`), undefined);
    for (const k of ['b', 'c', 'd']) await hbase.deleteRow(table, prefix + k);
    assert.deepEqual(await hbase.scan(table, { startRow: prefix, stopRow: stop }), []);
  } finally {
    hbase.close();
  }
});

test('MinIO: put an object, fetch it back through a presigned GET', { skip: !s3Configured && 'no PARLEY_S3_* (run npm run stack:up)' }, async () => {
  const endpoint = new URL(settings.PARLEY_S3_ENDPOINT!);
  const region = settings.PARLEY_S3_REGION ?? 'us-east-1';
  const bucket = settings.PARLEY_S3_BUCKET ?? 'parley-attachments';
  const s3 = new Minio.Client({
    endPoint: endpoint.hostname,
    port: Number(endpoint.port || (endpoint.protocol === 'https:' ? 443 : 80)),
    useSSL: endpoint.protocol === 'https:',
    accessKey: settings.PARLEY_S3_ACCESS_KEY!,
    secretKey: settings.PARLEY_S3_SECRET_KEY!,
    region,
  });
  if (!(await s3.bucketExists(bucket))) await s3.makeBucket(bucket, region);

  const key = `smoke/${Date.now()}-${randomBytes(4).toString('hex')}.bin`;
  const body = randomBytes(256 * 1024);
  await s3.putObject(bucket, key, body, body.length, { 'Content-Type': 'application/octet-stream' });
  try {
    const url = await s3.presignedGetObject(bucket, key, 60);
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), body);

    // The signature is what grants access: the same URL without it is refused.
    const unsigned = await fetch(url.split('?')[0]);
    await unsigned.arrayBuffer();
    assert.equal(unsigned.status, 403);
  } finally {
    await s3.removeObject(bucket, key);
  }
});
