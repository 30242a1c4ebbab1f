// The BlobStore contract against the embedded folder (served by blob/routes.ts on a real HTTP server) and
// the real MinIO of test/stack (a fresh bucket per run), and what only one adapter promises: MinIO's
// bucket is made private with Parley's lifecycle rule; the embedded store keeps every path inside its
// folder, sweeps old objects, and its upload endpoint reads multipart as a stream without trusting it.
import assert from './helpers/assert.ts';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type * as Minio from 'minio';
import type { FastifyInstance } from 'fastify';
import { EmbeddedBlobStore } from '../blob/blob-store-embedded.ts';
import { LIFECYCLE_RULE_ID, MinioBlobStore } from '../blob/blob-store-minio.ts';
import { newKey } from '../blob/keys.ts';
import { MultipartParser, type MultipartEvent } from '../blob/multipart.ts';
import { embeddedStoreRoutes } from '../blob/routes.ts';
import { createHttp } from '../common/http.ts';
import { createLogger } from '../common/log.ts';
import { blobStoreContract, dropBucket, getBytes, hostileKeys, minioSettings, postForm, rawMinio, sha256 } from './contracts/blob-store.ts';
import { rand, tempDir } from './contracts/support.ts';

const MAX_UPLOAD = 4 * 1024 * 1024;

/** An embedded store in a temporary folder, with its endpoints on a real HTTP server on port 0. */
async function embeddedServer(dir: string, opts: { expireDays?: number } = {}): Promise<{ store: EmbeddedBlobStore; app: FastifyInstance; origin: string }> {
  const store = new EmbeddedBlobStore({ dir, expireDays: opts.expireDays ?? 30, maxUploadBytes: MAX_UPLOAD, fsync: false });
  await store.ensureBucket();
  const app = createHttp(createLogger('silent'));
  embeddedStoreRoutes(app, store);
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { store, app, origin: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` };
}

blobStoreContract('embedded (local folder, HMAC-signed URLs)', async () => {
  const tmp = await tempDir('blobs');
  const dir = path.join(tmp.dir, 'blobs');
  const first = await embeddedServer(dir);
  let store = first.store;
  return {
    adapter: store,
    origin: first.origin,
    unsignedUrl: (key) => `${first.origin}/v1/blobs/${key}`,
    // The server keeps running; a new store instance on the same folder answers through routes of its own
    // registered at start, so reopen checks the folder and the secret, which are what a restart keeps.
    reopen: async () => {
      await store.close();
      store = new EmbeddedBlobStore({ dir, expireDays: 30, maxUploadBytes: MAX_UPLOAD, fsync: false });
      await store.ensureBucket();
      return store;
    },
    cleanup: async () => {
      await store.close();
      await first.store.close();
      await first.app.close();
      await tmp.remove();
    },
  };
});

blobStoreContract('minio (presigned POST policy and GET)', async () => {
  const opts = minioSettings(`parley-test-${rand(6)}`);
  let store = new MinioBlobStore(opts);
  await store.ensureBucket();
  const raw = rawMinio(opts);
  return {
    adapter: store,
    origin: opts.endpoint,
    unsignedUrl: (key) => `${opts.endpoint}/${opts.bucket}/${key}`,
    reopen: async () => {
      await store.close();
      store = new MinioBlobStore(opts);
      await store.ensureBucket();
      return store;
    },
    cleanup: async () => {
      await store.close();
      await dropBucket(raw, opts.bucket);
    },
  };
});

describe('MinioBlobStore bucket', () => {
  const buckets: string[] = [];
  let raw: Minio.Client;
  const bucket = () => {
    const name = `parley-test-${rand(6)}`;
    buckets.push(name);
    return name;
  };
  before(() => {
    raw = rawMinio(minioSettings('unused'));
  });
  after(async () => {
    for (const b of buckets) await dropBucket(raw, b);
  });

  it('creates a missing bucket, private, with the expiry rule; a second start changes the days and keeps other rules', async () => {
    const opts = minioSettings(bucket(), 30);
    assert.equal(await raw.bucketExists(opts.bucket), false);
    const store = new MinioBlobStore(opts);
    await store.ensureBucket();
    assert.equal(await raw.bucketExists(opts.bucket), true);
    await assert.rejects(raw.getBucketPolicy(opts.bucket), (err: { code?: string }) => err.code === 'NoSuchBucketPolicy', 'no bucket policy: private');
    let rules = await store.lifecycle();
    assert.deepEqual(
      rules.map((r) => [r.ID, r.Status, r.Expiration?.Days]),
      [[LIFECYCLE_RULE_ID, 'Enabled', 30]],
    );
    await store.close();

    // An operator's own rule survives Parley's restarts.
    await raw.setBucketLifecycle(opts.bucket, {
      Rule: [
        { ID: 'operator-rule', Status: 'Enabled', Filter: { Prefix: 'other/' }, Expiration: { Days: 7 } },
        { ID: LIFECYCLE_RULE_ID, Status: 'Enabled', Filter: { Prefix: '' }, Expiration: { Days: 30 } },
      ],
    });
    const again = new MinioBlobStore({ ...opts, expireDays: 90 });
    await again.ensureBucket();
    rules = await again.lifecycle();
    assert.deepEqual(rules.map((r) => [r.ID, r.Expiration?.Days]).sort(), [['operator-rule', 7], [LIFECYCLE_RULE_ID, 90]].sort());
    const off = new MinioBlobStore({ ...opts, expireDays: 0 });
    await off.ensureBucket();
    assert.deepEqual((await off.lifecycle()).map((r) => r.ID), ['operator-rule'], 'expireDays 0 removes only our rule');
    await again.close();
    await off.close();
  });

  it('removes a bucket policy that lets anyone read', async () => {
    const opts = minioSettings(bucket());
    await raw.makeBucket(opts.bucket, opts.region);
    const policy = {
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Principal: { AWS: ['*'] }, Action: ['s3:GetObject'], Resource: [`arn:aws:s3:::${opts.bucket}/*`] }],
    };
    await raw.setBucketPolicy(opts.bucket, JSON.stringify(policy));
    const key = newKey('alice');
    await raw.putObject(opts.bucket, key, Buffer.from('public?'));
    assert.equal((await fetch(`${opts.endpoint}/${opts.bucket}/${key}`)).status, 200, 'the policy made it public');
    const store = new MinioBlobStore(opts);
    await store.ensureBucket();
    assert.equal((await fetch(`${opts.endpoint}/${opts.bucket}/${key}`)).status, 403, 'private again');
    await store.close();
  });

  it('signs URLs for the public endpoint when one is set', async () => {
    const opts = minioSettings(bucket());
    const publicEndpoint = opts.endpoint.replace('127.0.0.1', 'localhost');
    const store = new MinioBlobStore({ ...opts, publicEndpoint });
    await store.ensureBucket();
    const key = newKey('alice');
    const post = await store.presignedPost({ key, mime: 'text/plain', minBytes: 2, maxBytes: 2, owner: 'alice', expiresAt: new Date(Date.now() + 60_000) });
    assert.equal(new URL(post.url).hostname, 'localhost');
    assert.ok((await postForm(publicEndpoint, post, Buffer.from('hi'))).status < 300);
    const url = await store.presignedGet(key, 60);
    assert.equal(new URL(url).hostname, 'localhost');
    assert.equal((await getBytes(publicEndpoint, url)).body.toString(), 'hi');
    await store.close();
  });
});

describe('EmbeddedBlobStore folder and endpoints', () => {
  let tmp: { dir: string; remove(): Promise<void> };
  let s: Awaited<ReturnType<typeof embeddedServer>>;
  let dir: string;
  before(async () => {
    tmp = await tempDir('blobs-embedded');
    dir = path.join(tmp.dir, 'data', 'blobs');
    s = await embeddedServer(dir);
  });
  after(async () => {
    await s?.store.close();
    await s?.app.close();
    await tmp?.remove();
  });

  /** Every file under a folder, relative to it. */
  const files = (root: string): string[] =>
    (fs.readdirSync(root, { recursive: true, withFileTypes: true }) as fs.Dirent[])
      .filter((d) => d.isFile())
      .map((d) => path.relative(root, path.join(d.parentPath, d.name)))
      .sort();

  /** A raw HTTP request, so paths like `/../` reach the server as written. */
  function raw(method: string, pathname: string, headers: Record<string, string> = {}, body?: Buffer | string): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const req = http.request(`${s.origin}${pathname.startsWith('/') ? '' : '/'}`, { method, path: pathname, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  it('keeps its secret private and shared: a second store on the folder honours the first one\'s URLs', async () => {
    assert.equal(fs.statSync(path.join(dir, '.secret')).mode & 0o777, 0o600);
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    const key = newKey('alice');
    await s.store.put(key, Buffer.from('shared'), { mime: 'text/plain', owner: 'alice' });
    const other = new EmbeddedBlobStore({ dir, expireDays: 30, maxUploadBytes: MAX_UPLOAD });
    const url = await other.presignedGet(key, 60);
    assert.equal((await getBytes(s.origin, url)).body.toString(), 'shared');
    await other.close();
  });

  it('never reads or writes outside its folder, whatever key or path a request names', async () => {
    const canary = path.join(tmp.dir, 'data', 'canary.txt');
    fs.writeFileSync(canary, 'do not touch');
    const before = files(tmp.dir);
    const key = newKey('alice');
    await s.store.put(key, Buffer.from('mine'), { mime: 'text/plain', owner: 'alice' });
    const good = new URL(await s.store.presignedGet(key, 60), s.origin);
    const query = good.search;
    for (const hostile of [
      ...hostileKeys.map((k) => encodeURIComponent(k)),
      '../canary.txt',
      '../../canary.txt',
      '%2e%2e/%2e%2e/canary.txt',
      '%2e%2e%2f%2e%2e%2fcanary.txt',
      '..%2f..%2fcanary.txt',
      'u/alice/..%2f..%2f..%2f..%2fcanary.txt',
      `${key}/../../../../canary.txt`,
      `${key}%00`,
      '.secret',
      '../.secret',
      '..%2f.secret',
    ]) {
      for (const q of ['', query]) {
        const res = await raw('GET', `/v1/blobs/${hostile}${q}`);
        assert.ok(res.status >= 400 && res.status < 500, `GET ${hostile} answered ${res.status}`);
        assert.ok(!res.text.includes('do not touch') && !/[0-9a-f]{64}/.test(res.text), `GET ${hostile} leaked a file`);
      }
    }
    // A form for a hostile key cannot be made, and a form's key cannot be changed to one.
    const post = await s.store.presignedPost({ key: newKey('alice'), mime: 'text/plain', minBytes: 1, maxBytes: 100, owner: 'alice', expiresAt: new Date(Date.now() + 60_000) });
    for (const hostile of ['../canary.txt', '../../x', '/tmp/x', 'u/alice/../../../canary.txt']) {
      const res = await postForm(s.origin, post, Buffer.from('overwrite'), { fields: { key: hostile } });
      assert.equal(res.status, 403, `upload to ${hostile}`);
    }
    assert.equal(fs.readFileSync(canary, 'utf8'), 'do not touch');
    const added = files(tmp.dir).filter((f) => !before.includes(f));
    assert.deepEqual(added.sort(), [`data/blobs/meta/${key}.json`, `data/blobs/objects/${key}`].sort(), 'only the one object was written');
  });

  it('refuses junk uploads with 4xx and leaves no temporary files', async () => {
    const key = newKey('alice');
    const post = await s.store.presignedPost({ key, mime: 'text/plain', minBytes: 1, maxBytes: 1000, owner: 'alice', expiresAt: new Date(Date.now() + 60_000) });
    const boundary = `----parley${rand()}`;
    const ct = { 'content-type': `multipart/form-data; boundary=${boundary}` };
    const part = (name: string, value: string, filename?: string) =>
      `--${boundary}\r\nContent-Disposition: form-data; name="${name}"${filename ? `; filename="${filename}"` : ''}\r\n\r\n${value}\r\n`;
    const fields = Object.entries(post.fields).map(([k, v]) => part(k, v)).join('');
    const cases: [string, Record<string, string>, string | Buffer, number[]][] = [
      ['not multipart', { 'content-type': 'application/json' }, '{}', [400, 415]],
      ['no boundary', { 'content-type': 'multipart/form-data' }, fields, [400]],
      ['no file part', ct, `${fields}--${boundary}--\r\n`, [400]],
      ['a file before the fields', ct, `${part('file', 'hello', 'a.txt')}${fields}--${boundary}--\r\n`, [403]],
      ['a truncated file', ct, `${fields}--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nhello`, [400]],
      ['garbage', ct, randomBytes(5000), [400]],
      ['a part without a name', ct, `--${boundary}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--${boundary}--\r\n`, [400]],
      ['huge part headers', ct, `--${boundary}\r\nX: ${'a'.repeat(20_000)}\r\n\r\n`, [400]],
      ['a huge field', ct, `${part('policy', 'p'.repeat(100_000))}--${boundary}--\r\n`, [400]],
    ];
    for (const [what, headers, body, statuses] of cases) {
      const res = await raw('POST', '/v1/blobs', headers, body);
      assert.ok(statuses.includes(res.status), `${what}: ${res.status} ${res.text.slice(0, 200)}`);
      assert.doesNotMatch(res.text, /at .*\.ts:\d+/, 'no stack trace');
    }
    const tooLong = await raw('POST', '/v1/blobs', { ...ct, 'content-length': String(MAX_UPLOAD + 1) }, '');
    assert.equal(tooLong.status, 413, 'a declared length past the limit is refused before reading');
    // Chunked, with no length given: refused once the bytes read pass the limit.
    const chunked = await new Promise<number>((resolve) => {
      const req = http.request(`${s.origin}/v1/blobs`, { method: 'POST', headers: { ...ct, 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', () => resolve(-1));
      req.write(fields + `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n`);
      const block = randomBytes(64 * 1024);
      let sent = 0;
      const pump = () => {
        while (sent < MAX_UPLOAD * 2) {
          sent += block.length;
          if (!req.write(block)) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
    });
    assert.ok(chunked === 413 || chunked === -1, `an endless chunked upload answered ${chunked}`);
    assert.equal(await s.store.stat(key), null);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'tmp')), [], 'no temporary files left');
    // The form still works after all that.
    assert.equal((await postForm(s.origin, post, Buffer.from('fine'))).status, 204);
    assert.equal((await s.store.stat(key))?.size, 4);
  });

  it('sweeps objects older than expireDays, with their grants, and keeps newer ones', async () => {
    const old = newKey('alice');
    const fresh = newKey('alice');
    for (const k of [old, fresh]) {
      await s.store.put(k, Buffer.from(k), { mime: 'text/plain', owner: 'alice' });
      await s.store.grant(k, ['bob']);
    }
    const metaFile = path.join(dir, 'meta', `${old}.json`);
    const meta = JSON.parse(fs.readFileSync(metaFile, 'utf8'));
    meta.created = Date.now() - 31 * 86400_000;
    fs.writeFileSync(metaFile, JSON.stringify(meta));
    assert.ok((await s.store.expire()) >= 1);
    assert.equal(await s.store.stat(old), null);
    assert.equal(await s.store.isReader(old, 'bob'), false);
    assert.equal(fs.existsSync(path.join(dir, 'objects', old)), false);
    assert.equal((await s.store.stat(fresh))?.size, fresh.length);
    assert.equal(await s.store.isReader(fresh, 'bob'), true);
  });
});

describe('multipart reader', () => {
  const boundary = 'xYzZY-boundary';
  const file = randomBytes(3000);
  const body = Buffer.concat([
    Buffer.from(`preamble to ignore\r\n--${boundary}\r\nContent-Disposition: form-data; name="key"\r\n\r\nu/alice/x\r\n`),
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="quoted"; filename="a \\"b\\".txt"\r\nContent-Type: text/plain\r\n\r\nline\r\n--not the boundary\r\n`),
    Buffer.from(`--${boundary}  \r\nContent-Disposition: form-data; name="file"; filename="f.bin"\r\n\r\n`),
    file,
    Buffer.from(`\r\n--${boundary}--\r\nepilogue`),
  ]);

  function read(chunks: Buffer[]): { parts: { name: string; filename: string | null; data: Buffer }[]; ended: boolean } {
    const parser = new MultipartParser(boundary);
    const parts: { name: string; filename: string | null; data: Buffer }[] = [];
    let current: Buffer[] = [];
    let ended = false;
    const events: MultipartEvent[] = chunks.flatMap((c) => parser.push(c));
    for (const ev of events) {
      if (ev.type === 'part') {
        parts.push({ name: ev.headers.name, filename: ev.headers.filename, data: Buffer.alloc(0) });
        current = [];
      } else if (ev.type === 'data') current.push(Buffer.from(ev.data));
      else if (ev.type === 'partEnd') parts[parts.length - 1].data = Buffer.concat(current);
      else ended = true;
    }
    return { parts, ended };
  }

  it('reads the same parts however the body is cut into chunks', () => {
    const whole = read([body]);
    assert.equal(whole.ended, true);
    assert.deepEqual(
      whole.parts.map((p) => [p.name, p.filename]),
      [['key', null], ['quoted', 'a "b".txt'], ['file', 'f.bin']],
    );
    assert.equal(whole.parts[0].data.toString(), 'u/alice/x');
    assert.equal(whole.parts[1].data.toString(), `line\r\n--not the boundary`);
    assert.equal(sha256(whole.parts[2].data), sha256(file));
    for (let cut = 1; cut < body.length; cut += 7) {
      const split = read([body.subarray(0, cut), body.subarray(cut)]);
      assert.deepEqual(split, whole, `cut at ${cut}`);
    }
    const bytes = read([...body].map((b) => Buffer.from([b])));
    assert.deepEqual(bytes, whole, 'one byte at a time');
  });
});
