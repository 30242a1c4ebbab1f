// The BlobStore contract: the store itself enforces an upload form's key, type, size range and expiry;
// download URLs give the same bytes until they expire, for their key only; nothing is readable unsigned;
// grants add up per key and go with the object; every method refuses a key that is not ours.
import assert from '../helpers/assert.ts';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import * as Minio from 'minio';
import type { BlobStore, PresignedPost } from '../../blob/blob-store.ts';
import type { MinioBlobOptions } from '../../blob/blob-store-minio.ts';
import { newKey, thumbnailKey } from '../../blob/keys.ts';
import { ParleyError } from '../../common/errors.ts';
import { loadStackEnv } from '../stack/env.ts';
import { rand, sleep, type Fixture } from './support.ts';

export interface BlobFixture extends Fixture<BlobStore> {
  /** The origin relative store URLs resolve against (the embedded adapter's HTTP server). */
  origin: string;
  /** The object's address with no signature, as an anonymous client would try it. */
  unsignedUrl(key: string): string;
}

export type BlobStoreFactory = () => Promise<BlobFixture>;

export const sha256 = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Keys no client may name: traversal, absolute paths, encodings, NUL, length, other trees. */
export const hostileKeys: readonly string[] = [
  '',
  '..',
  '../x',
  '../../etc/passwd',
  '/etc/passwd',
  'u/alice/../../etc/passwd',
  'u/alice/..',
  'u/alice/%2e%2e',
  'u/alice/%2e%2e%2f%2e%2e%2fsecret',
  'u/../u/alice/AAAAAAAAAAAAAAAAAAAAAA',
  'u/alice/AAAAAAAAAAAAAAAAAAAAAA/../../../x',
  'u/alice/AAAAAAAAAAAAAAAAAAAAA\u0000',
  'u/alice/AAAAAAAAAAAAAAAAAAAAAA\u0000.txt',
  `u/alice/${'A'.repeat(5000)}`,
  'u/alice\\..\\..\\x',
  'acl/u/alice/AAAAAAAAAAAAAAAAAAAAAA',
  'meta/u/alice/AAAAAAAAAAAAAAAAAAAAAA',
  'u/Alice/AAAAAAAAAAAAAAAAAAAAAA',
  'u/alice/AAAAAAAAAAAAAAAAAAAAAA.json',
  'C:\\Windows\\win.ini',
];

/** The real MinIO's settings; a missing one fails the suite. */
const S3_KEYS = ['PARLEY_S3_ENDPOINT', 'PARLEY_S3_ACCESS_KEY', 'PARLEY_S3_SECRET_KEY', 'PARLEY_S3_REGION'] as const;

export function minioSettings(bucket: string, expireDays = 30): MinioBlobOptions {
  const env = loadStackEnv();
  const missing = S3_KEYS.filter((k) => !env[k]);
  if (missing.length > 0)
    throw new Error(`the MinIO suite needs ${missing.join(', ')} in .stack.env: start it with \`npx tsx test/stack/cli.ts up --only minio\``);
  return {
    endpoint: env.PARLEY_S3_ENDPOINT,
    accessKey: env.PARLEY_S3_ACCESS_KEY,
    secretKey: env.PARLEY_S3_SECRET_KEY,
    region: env.PARLEY_S3_REGION,
    bucket,
    expireDays,
  };
}

export function rawMinio(o: MinioBlobOptions): Minio.Client {
  const url = new URL(o.endpoint);
  return new Minio.Client({ endPoint: url.hostname, port: Number(url.port || 80), useSSL: url.protocol === 'https:', accessKey: o.accessKey, secretKey: o.secretKey, region: o.region });
}

/** Deletes every object of the bucket, then the bucket. */
export async function dropBucket(client: Minio.Client, bucket: string): Promise<void> {
  if (!(await client.bucketExists(bucket))) return;
  const names: string[] = [];
  for await (const item of client.listObjectsV2(bucket, '', true) as AsyncIterable<{ name?: string }>) if (item.name) names.push(item.name);
  for (let i = 0; i < names.length; i += 1000) await client.removeObjects(bucket, names.slice(i, i + 1000));
  await client.removeBucket(bucket);
}

/** Posts a presigned form with plain fetch + FormData, the way a browser or app would. */
export async function postForm(
  origin: string,
  post: PresignedPost,
  file: Buffer,
  opts: { fields?: Record<string, string>; omit?: string[]; fileType?: string } = {},
): Promise<{ status: number; text: string }> {
  const form = new FormData();
  const fields = { ...post.fields, ...opts.fields };
  for (const [k, v] of Object.entries(fields)) if (!opts.omit?.includes(k)) form.append(k, v);
  form.append('file', new Blob([new Uint8Array(file)], { type: opts.fileType ?? fields['Content-Type'] ?? 'application/octet-stream' }), 'upload.bin');
  const res = await fetch(new URL(post.url, origin), { method: 'POST', body: form });
  return { status: res.status, text: await res.text() };
}

export async function getBytes(origin: string, url: string): Promise<{ status: number; body: Buffer; headers: Headers }> {
  const res = await fetch(new URL(url, origin), { redirect: 'manual' });
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()), headers: res.headers };
}

async function rejectsBadRequest(what: string, p: Promise<unknown>): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof ParleyError && err.code === 'bad_request', what);
}

export function blobStoreContract(name: string, make: BlobStoreFactory): void {
  describe(`BlobStore contract: ${name}`, () => {
    let f: BlobFixture;
    let store: BlobStore;
    const user = () => `u${rand()}`;
    const inAMinute = () => new Date(Date.now() + 60_000);

    /** An object uploaded through its form; returns its key and bytes. */
    async function upload(owner = user(), bytes = randomBytes(1000 + Math.floor(Math.random() * 1000)), mime = 'application/pdf') {
      const key = newKey(owner);
      const post = await store.presignedPost({ key, mime, minBytes: bytes.length, maxBytes: bytes.length, owner, expiresAt: inAMinute() });
      const res = await postForm(f.origin, post, bytes);
      assert.ok(res.status >= 200 && res.status < 300, `upload answered ${res.status} ${res.text.slice(0, 200)}`);
      return { key, bytes, owner, mime };
    }

    before(async () => {
      f = await make();
      store = f.adapter;
    });
    after(async () => {
      await f?.cleanup();
    });

    it('makes its bucket idempotently and answers ping', async () => {
      await store.ensureBucket();
      await store.ensureBucket();
      assert.equal(await store.ping(), true);
    });

    it('takes an upload through the presigned form and reports its size, type and owner', async () => {
      const started = Date.now();
      const { key, bytes, owner } = await upload();
      const st = await store.stat(key);
      assert.ok(st);
      assert.equal(st.size, bytes.length);
      assert.equal(st.mime, 'application/pdf');
      assert.equal(st.owner, owner);
      assert.ok(st.modified.getTime() > started - 5000 && st.modified.getTime() < Date.now() + 5000, 'modified is about now');
    });

    it('takes a form with the size anywhere in its range, including the bounds', async () => {
      const owner = user();
      for (const size of [10, 15, 20]) {
        const key = newKey(owner);
        const post = await store.presignedPost({ key, mime: 'text/plain', minBytes: 10, maxBytes: 20, owner, expiresAt: inAMinute() });
        const res = await postForm(f.origin, post, randomBytes(size));
        assert.ok(res.status < 300, `${size} bytes: ${res.status}`);
        assert.equal((await store.stat(key))?.size, size);
      }
    });

    it('serves the same bytes through a presigned GET, as a download', async () => {
      const { key, bytes } = await upload(user(), randomBytes(300_000));
      const url = await store.presignedGet(key, 60);
      const res = await getBytes(f.origin, url);
      assert.equal(res.status, 200);
      assert.equal(sha256(res.body), sha256(bytes));
      assert.equal(res.headers.get('content-type'), 'application/pdf');
      assert.match(res.headers.get('content-disposition') ?? '', /^attachment/);
    });

    it('refuses, by the store, a file larger or smaller than the range, another type, another key, a tampered policy', async () => {
      const owner = user();
      const key = newKey(owner);
      const post = await store.presignedPost({ key, mime: 'image/png', minBytes: 100, maxBytes: 100, owner, expiresAt: inAMinute() });
      const refusals: [string, Promise<{ status: number; text: string }>][] = [
        ['one byte too many', postForm(f.origin, post, randomBytes(101))],
        ['a megabyte too many', postForm(f.origin, post, randomBytes(1024 * 1024))],
        ['one byte too few', postForm(f.origin, post, randomBytes(99))],
        ['another type', postForm(f.origin, post, randomBytes(100), { fields: { 'Content-Type': 'text/html' } })],
        ['another key', postForm(f.origin, post, randomBytes(100), { fields: { key: newKey(owner) } })],
        ["another user's key", postForm(f.origin, post, randomBytes(100), { fields: { key: newKey(user()) } })],
        ['no policy', postForm(f.origin, post, randomBytes(100), { omit: ['policy'] })],
        ['no type', postForm(f.origin, post, randomBytes(100), { omit: ['Content-Type'] })],
        ['a tampered policy', postForm(f.origin, post, randomBytes(100), { fields: { policy: tamper(post.fields.policy) } })],
      ];
      for (const [what, p] of refusals) {
        const res = await p;
        assert.ok(res.status >= 400 && res.status < 500, `${what}: answered ${res.status}`);
      }
      assert.equal(await store.stat(key), null, 'nothing was stored');
      const ok = await postForm(f.origin, post, randomBytes(100));
      assert.ok(ok.status < 300, 'the form itself still works');
    });

    it('refuses a form after it expires', async () => {
      const owner = user();
      const key = newKey(owner);
      const post = await store.presignedPost({ key, mime: 'text/plain', minBytes: 5, maxBytes: 5, owner, expiresAt: new Date(Date.now() + 1000) });
      await sleep(2100);
      const res = await postForm(f.origin, post, Buffer.from('hello'));
      assert.equal(res.status, 403, res.text.slice(0, 200));
      assert.equal(await store.stat(key), null);
    });

    it('stops serving a download URL once it expires, and a URL is good for its own key only', async () => {
      const a = await upload();
      const b = await upload(a.owner);
      const url = await store.presignedGet(a.key, 1);
      assert.equal((await getBytes(f.origin, url)).status, 200);
      const swapped = url.replace(a.key, b.key);
      assert.notEqual(swapped, url);
      assert.equal((await getBytes(f.origin, swapped)).status, 403, "another key with this key's signature");
      await sleep(2100);
      assert.equal((await getBytes(f.origin, url)).status, 403, 'expired');
    });

    it('keeps the bucket private: an object is not readable without a signature', async () => {
      const { key } = await upload();
      const res = await getBytes(f.origin, f.unsignedUrl(key));
      assert.ok(res.status === 403 || res.status === 404, `unsigned read answered ${res.status}`);
    });

    it('answers stat and read of a missing object with null, and read refuses past maxBytes', async () => {
      const key = newKey(user());
      assert.equal(await store.stat(key), null);
      assert.equal(await store.read(key, 1000), null);
      assert.equal(await store.isReader(key, user()), false);
      const up = await upload();
      assert.deepEqual(await store.read(up.key, up.bytes.length), up.bytes);
      await assert.rejects(store.read(up.key, up.bytes.length - 1), (err: unknown) => err instanceof ParleyError && err.code === 'too_large');
    });

    it('writes server-side objects (thumbnails) that stat, read and download back', async () => {
      const up = await upload();
      const thumb = thumbnailKey(up.key);
      const bytes = randomBytes(2048);
      await store.put(thumb, bytes, { mime: 'image/jpeg', owner: up.owner });
      const st = await store.stat(thumb);
      assert.equal(st?.size, 2048);
      assert.equal(st?.mime, 'image/jpeg');
      assert.equal(st?.owner, up.owner);
      assert.deepEqual(await store.read(thumb, 4096), bytes);
      const res = await getBytes(f.origin, await store.presignedGet(thumb, 60));
      assert.equal(sha256(res.body), sha256(bytes));
      assert.deepEqual(await store.read(up.key, 1e9), up.bytes, 'the original is untouched');
    });

    it('records grants per key: each grant adds readers, other keys see none of them', async () => {
      const a = await upload();
      const b = await upload(a.owner);
      const [bob, carol, dave] = [user(), user(), user()];
      await store.grant(a.key, [bob]);
      await store.grant(a.key, [carol]);
      await store.grant(a.key, []);
      assert.equal(await store.isReader(a.key, bob), true);
      assert.equal(await store.isReader(a.key, carol), true);
      assert.equal(await store.isReader(a.key, dave), false);
      assert.equal(await store.isReader(b.key, bob), false, 'another key of the same owner');
      // Concurrent grants of one key all land: none overwrites another.
      const many = Array.from({ length: 12 }, () => user());
      await Promise.all(many.map((u) => store.grant(b.key, [u])));
      for (const u of many) assert.equal(await store.isReader(b.key, u), true, u);
    });

    it('deletes an object with its grants; deleting what is not there is fine', async () => {
      const up = await upload();
      const bob = user();
      await store.grant(up.key, [bob]);
      await store.delete(up.key);
      assert.equal(await store.stat(up.key), null);
      assert.equal(await store.read(up.key, 1e9), null);
      assert.equal(await store.isReader(up.key, bob), false);
      await store.delete(up.key);
      await store.delete(newKey(user()));
    });

    it('refuses hostile keys in every method', async () => {
      const owner = user();
      for (const key of hostileKeys) {
        const label = JSON.stringify(key.slice(0, 60));
        await rejectsBadRequest(`presignedPost ${label}`, store.presignedPost({ key, mime: 'text/plain', minBytes: 1, maxBytes: 1, owner, expiresAt: inAMinute() }));
        await rejectsBadRequest(`presignedGet ${label}`, store.presignedGet(key, 60));
        await rejectsBadRequest(`stat ${label}`, store.stat(key));
        await rejectsBadRequest(`read ${label}`, store.read(key, 10));
        await rejectsBadRequest(`put ${label}`, store.put(key, Buffer.from('x'), { mime: 'text/plain', owner }));
        await rejectsBadRequest(`delete ${label}`, store.delete(key));
        await rejectsBadRequest(`grant ${label}`, store.grant(key, ['bob']));
        await rejectsBadRequest(`isReader ${label}`, store.isReader(key, 'bob'));
      }
    });

    it('keeps objects, grants and issued URLs across a reopen', async (t) => {
      if (!f.reopen) return t.skip('this fixture has no reopen');
      const up = await upload();
      const bob = user();
      await store.grant(up.key, [bob]);
      const url = await store.presignedGet(up.key, 60);
      const pendingKey = newKey(up.owner);
      const pending = await store.presignedPost({ key: pendingKey, mime: 'text/plain', minBytes: 3, maxBytes: 3, owner: up.owner, expiresAt: inAMinute() });
      store = await f.reopen();
      assert.equal((await store.stat(up.key))?.size, up.bytes.length);
      assert.equal(await store.isReader(up.key, bob), true);
      assert.equal(sha256((await getBytes(f.origin, url)).body), sha256(up.bytes), 'a URL issued before');
      assert.ok((await postForm(f.origin, pending, Buffer.from('abc'))).status < 300, 'a form issued before');
      assert.equal((await store.stat(pendingKey))?.size, 3);
    });
  });
}

/** The same policy with one character changed: a different policy under the old signature. */
function tamper(policy: string | undefined): string {
  assert.ok(policy && policy.length > 30, 'the form has a policy field');
  const c = policy[20] === 'A' ? 'B' : 'A';
  return policy.slice(0, 20) + c + policy.slice(21);
}
