// Attachments end to end (PROTOCOL.md: `POST /v1/attachments`, `GET /v1/attachments/{key}`, kind
// `attachment`) on the embedded store and on the real MinIO: upload through the returned form with plain
// fetch, send, the recipient downloads the same bytes; refused: oversized and wrong-type uploads, keys that
// are someone else's, never uploaded or hostile, expired URLs, strangers.
//
// The server here is a test assembly: auth (embedded adapters) and blob/ routes on one fastify app, and
// "sending" runs the accept pipeline's attachment steps (blob/accept-step.ts) on the envelope the broker
// would stamp, until broker/accept.ts calls them over MQTT.
import assert from './helpers/assert.ts';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { EmbeddedDirectory } from '../auth/directory-embedded.ts';
import { authRoutes } from '../auth/routes.ts';
import { AuthService } from '../auth/service.ts';
import { EmbeddedThrottle } from '../auth/throttle-embedded.ts';
import { EmbeddedTokenStore } from '../auth/token-store-embedded.ts';
import { checkAttachment, grantAttachment } from '../blob/accept-step.ts';
import type { BlobStore } from '../blob/blob-store.ts';
import { EmbeddedBlobStore } from '../blob/blob-store-embedded.ts';
import { MinioBlobStore } from '../blob/blob-store-minio.ts';
import { newKey } from '../blob/keys.ts';
import { DEFAULT_ATTACHMENT_TYPES, parseTypeList } from '../blob/mime.ts';
import { blobRoutes } from '../blob/routes.ts';
import { AttachmentService, type AttachmentSettings, type CheckedAttachment } from '../blob/service.ts';
import { loadConfig } from '../common/config.ts';
import { encodeEnvelope, type Attachment, type Envelope } from '../common/envelope.ts';
import { ParleyError } from '../common/errors.ts';
import { createHttp } from '../common/http.ts';
import { IdGenerator } from '../common/ids.ts';
import { createLogger } from '../common/log.ts';
import { dropBucket, getBytes, hostileKeys, minioSettings, postForm, rawMinio, sha256 } from './contracts/blob-store.ts';
import { rand, sleep } from './contracts/support.ts';

type Backend = 'embedded' | 'minio';
/** An envelope as delivered: its attachment may carry the server's thumbnail key. */
type Delivered = Omit<Envelope, 'attachment'> & { attachment?: CheckedAttachment };
const PASSWORD = 'correct horse battery';
const MAX_BYTES = 25 * 1024 * 1024;

interface Server {
  origin: string;
  store: BlobStore;
  attachments: AttachmentService;
  http(pathname: string, init?: { body?: unknown; token?: string }): Promise<{ status: number; body: any; location: string | null }>;
  /** Registers and signs in a new user. */
  user(): Promise<{ id: string; token: string }>;
  /** What the broker does with a message of kind `attachment` from `from` to `to`: the envelope delivered, or the refusal. */
  send(from: string, to: string, attachment: Attachment): Promise<{ envelope: Delivered } | { error: ParleyError }>;
  stop(): Promise<void>;
}

/** A store on `backend` sharing one bucket or folder per run; `cleanup` removes it. */
async function makeStore(backend: Backend, place: { dir: string; bucket: string }): Promise<BlobStore> {
  const store: BlobStore =
    backend === 'embedded'
      ? new EmbeddedBlobStore({ dir: path.join(place.dir, 'blobs'), expireDays: 30, maxUploadBytes: MAX_BYTES + 1024 * 1024, fsync: false })
      : new MinioBlobStore(minioSettings(place.bucket));
  await store.ensureBucket();
  return store;
}

async function startServer(backend: Backend, place: { dir: string; bucket: string }, overrides: Partial<AttachmentSettings> = {}): Promise<Server> {
  const log = createLogger('silent');
  const config = loadConfig({ PARLEY_DATA_DIR: place.dir, PARLEY_LOG_LEVEL: 'silent' });
  const auth = new AuthService({ config, directory: new EmbeddedDirectory(config.dataDir), tokens: new EmbeddedTokenStore(), throttle: new EmbeddedThrottle() });
  const store = await makeStore(backend, place);
  const settings: AttachmentSettings = {
    maxBytes: MAX_BYTES,
    types: parseTypeList(DEFAULT_ATTACHMENT_TYPES),
    uploadSeconds: 900,
    downloadSeconds: 300,
    thumbnails: true,
    ...overrides,
  };
  const attachments = new AttachmentService({ store, settings, log });
  const app = createHttp(log);
  authRoutes(app, auth);
  blobRoutes(app, { auth, attachments, store });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const origin = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const ids = new IdGenerator(3);

  const server: Server = {
    origin,
    store,
    attachments,
    async http(pathname, init = {}) {
      const headers: Record<string, string> = {};
      if (init.body !== undefined) headers['content-type'] = 'application/json';
      if (init.token) headers.authorization = `Bearer ${init.token}`;
      const res = await fetch(origin + pathname, {
        method: init.body !== undefined ? 'POST' : 'GET',
        headers,
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
        redirect: 'manual',
      });
      const text = await res.text();
      let body: unknown = null;
      try {
        body = text ? JSON.parse(text) : null;
      } catch {
        body = text;
      }
      return { status: res.status, body, location: res.headers.get('location') };
    },
    async user() {
      const id = `u${rand(5)}`;
      assert.equal((await server.http('/v1/auth/register', { body: { username: id, password: PASSWORD } })).status, 201);
      const login = await server.http('/v1/auth/login', { body: { username: id, password: PASSWORD } });
      return { id, token: login.body.token as string };
    },
    async send(from, to, attachment) {
      const { id, ts } = ids.next();
      const message: Envelope = { id, from, to, ts, cid: `c${rand()}`, kind: 'attachment', body: 'look', attachment };
      const a = { message, text: encodeEnvelope(message), recipients: [to] };
      const deps = { attachments };
      try {
        await checkAttachment(a, deps);
        await grantAttachment(a, deps);
      } catch (err) {
        if (err instanceof ParleyError) return { error: err };
        throw err;
      }
      assert.equal(a.text, encodeEnvelope(a.message), 'the stored text is the delivered envelope');
      return { envelope: JSON.parse(a.text) as Delivered };
    },
    async stop() {
      await app.close();
      await store.close();
    },
  };
  return server;
}

/** Asks for an upload and posts `bytes` through the returned form; returns the key and the store's answer. */
async function upload(s: Server, token: string, bytes: Buffer, mime = 'application/pdf', declared = bytes.length, fields?: Record<string, string>) {
  const res = await s.http('/v1/attachments', { token, body: { name: 'report.pdf', mime, size: declared } });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  const { key, upload: form } = res.body;
  const stored = await postForm(s.origin, { url: form.url, fields: form.fields }, bytes, { fields });
  return { key: key as string, form, stored };
}

const picture = () =>
  sharp({ create: { width: 1600, height: 900, channels: 3, background: { r: 30, g: 120, b: 200 } } })
    .composite([{ input: Buffer.from('<svg width="400" height="300"><circle cx="200" cy="150" r="120" fill="orange"/></svg>'), top: 100, left: 100 }])
    .png()
    .toBuffer();

for (const backend of ['embedded', 'minio'] as Backend[]) {
  describe(`attachments, ${backend} store`, () => {
    let s: Server;
    const place = { dir: '', bucket: `parley-test-${rand(6)}` };
    before(async () => {
      place.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-attachments-'));
      s = await startServer(backend, place);
    });
    after(async () => {
      await s?.stop();
      if (backend === 'minio') await dropBucket(rawMinio(minioSettings(place.bucket)), place.bucket);
      fs.rmSync(place.dir, { recursive: true, force: true });
    });

    it('uploads through the returned form, sends it, and the recipient downloads the same bytes', async () => {
      const [alice, bob, carol] = [await s.user(), await s.user(), await s.user()];
      const bytes = randomBytes(700_000);
      const res = await s.http('/v1/attachments', { token: alice.token, body: { name: 'report.pdf', mime: 'application/pdf', size: bytes.length } });
      assert.equal(res.status, 201);
      assert.match(res.body.key, new RegExp(`^u/${alice.id}/[A-Za-z0-9_-]{22}$`));
      assert.equal(res.body.upload.method, 'POST');
      assert.match(res.body.upload.url, /^https?:\/\//, 'an absolute URL');
      assert.ok(Date.parse(res.body.expiresAt) > Date.now());
      const stored = await postForm(s.origin, res.body.upload, bytes);
      assert.ok(stored.status >= 200 && stored.status < 300, `the store answered ${stored.status}`);

      const attachment = { key: res.body.key, name: 'report.pdf', mime: 'application/pdf', size: bytes.length };
      const sent = await s.send(alice.id, bob.id, attachment);
      assert.ok('envelope' in sent, 'accepted');
      assert.deepEqual(sent.envelope.attachment, attachment, 'no thumbnail for a PDF');

      for (const reader of [bob, alice]) {
        const got = await s.http(`/v1/attachments/${res.body.key}`, { token: reader.token });
        assert.equal(got.status, 302, `${reader === bob ? 'the recipient' : 'the uploader'} is redirected`);
        const download = await getBytes(s.origin, got.location!);
        assert.equal(download.status, 200);
        assert.equal(sha256(download.body), sha256(bytes), 'the same bytes');
      }

      // A stranger learns nothing: the answer is the one for a key that never existed.
      const stranger = await s.http(`/v1/attachments/${res.body.key}`, { token: carol.token });
      const never = await s.http(`/v1/attachments/${newKey(alice.id)}`, { token: carol.token });
      assert.equal(stranger.status, 404);
      assert.equal(stranger.location, null);
      assert.deepEqual(stranger.body, never.body);
      assert.deepEqual(stranger.body, { error: { code: 'not_found', message: 'no such attachment' } });
      assert.equal((await s.http(`/v1/attachments/${res.body.key}`)).status, 401, 'no token');
      assert.equal((await s.http('/v1/attachments', { body: { name: 'a', mime: 'text/plain', size: 1 } })).status, 401);
    });

    it('makes a thumbnail of an image, referenced in the envelope and readable by the same people', async () => {
      const [alice, bob, carol] = [await s.user(), await s.user(), await s.user()];
      const png = await picture();
      const { key, stored } = await upload(s, alice.token, png, 'image/png');
      assert.ok(stored.status < 300);
      const sent = await s.send(alice.id, bob.id, { key, name: 'sky.png', mime: 'image/png', size: png.length });
      assert.ok('envelope' in sent);
      assert.equal(sent.envelope.attachment?.thumbnail, `${key}.thumb.jpg`);
      const got = await s.http(`/v1/attachments/${key}.thumb.jpg`, { token: bob.token });
      assert.equal(got.status, 302);
      const thumb = await getBytes(s.origin, got.location!);
      const meta = await sharp(thumb.body).metadata();
      assert.equal(meta.format, 'jpeg');
      assert.ok(meta.width <= 320 && meta.height <= 320, `${meta.width}x${meta.height}`);
      assert.ok(thumb.body.length < png.length);
      assert.equal((await s.http(`/v1/attachments/${key}.thumb.jpg`, { token: carol.token })).status, 404);
      // A second message with the same image reuses the thumbnail.
      const again = await s.send(alice.id, carol.id, { key, name: 'sky.png', mime: 'image/png', size: png.length });
      assert.ok('envelope' in again);
      assert.equal(again.envelope.attachment?.thumbnail, `${key}.thumb.jpg`);
      assert.equal((await s.http(`/v1/attachments/${key}.thumb.jpg`, { token: carol.token })).status, 302, 'granted by the second message');

      // Bytes that only claim to be an image still go out, without a thumbnail.
      const junk = randomBytes(5000);
      const fake = await upload(s, alice.token, junk, 'image/jpeg');
      const sentFake = await s.send(alice.id, bob.id, { key: fake.key, name: 'x.jpg', mime: 'image/jpeg', size: junk.length });
      assert.ok('envelope' in sentFake);
      assert.equal(sentFake.envelope.attachment?.thumbnail, undefined);
    });

    it('refuses uploads too large or of a type not allowed, at the API and at the store', async () => {
      const alice = await s.user();
      for (const [body, status] of [
        [{ name: 'big.zip', mime: 'application/zip', size: MAX_BYTES + 1 }, 413],
        [{ name: 'page.html', mime: 'text/html', size: 10 }, 400],
        [{ name: 'run.exe', mime: 'application/x-msdownload', size: 10 }, 400],
        [{ name: 'x.svg', mime: 'IMAGE/PNG', size: 10 }, 400],
        [{ name: 'x.png', mime: 'image/png; charset=x', size: 10 }, 400],
        [{ name: 'x.png', mime: 'image/png', size: 0 }, 400],
        [{ name: 'x.png', mime: 'image/png', size: -1 }, 400],
        [{ name: 'x.png', mime: 'image/png', size: 1.5 }, 400],
        [{ name: 'x.png', mime: 'image/png', size: '100' }, 400],
        [{ name: '', mime: 'image/png', size: 10 }, 400],
        [{ name: 'a\u0000b', mime: 'image/png', size: 10 }, 400],
        [{ mime: 'image/png', size: 10 }, 400],
      ] as const) {
        const res = await s.http('/v1/attachments', { token: alice.token, body });
        assert.equal(res.status, status, JSON.stringify(body));
        assert.equal(res.body.error.code, status === 413 ? 'too_large' : 'bad_request');
      }
      // The store holds the client to what it declared: one byte more, or another type, is refused there.
      const bigger = await upload(s, alice.token, randomBytes(1001), 'application/pdf', 1000);
      assert.ok(bigger.stored.status >= 400 && bigger.stored.status < 500, `oversized upload: ${bigger.stored.status}`);
      assert.equal(await s.store.stat(bigger.key), null);
      const html = await upload(s, alice.token, Buffer.from('<script>alert(1)</script>'), 'text/plain', undefined, { 'Content-Type': 'text/html' });
      assert.equal(html.stored.status, 403, 'another content type than the policy');
      assert.equal(await s.store.stat(html.key), null);
      const sent = await s.send(alice.id, (await s.user()).id, { key: bigger.key, name: 'report.pdf', mime: 'application/pdf', size: 1000 });
      assert.ok('error' in sent && sent.error.message === 'unknown attachment key', 'nothing to send');
    });

    it("refuses a message whose key is someone else's, never uploaded, hostile, or does not match the upload", async () => {
      const [alice, bob, carol] = [await s.user(), await s.user(), await s.user()];
      const bytes = randomBytes(2000);
      const bobs = await upload(s, bob.token, bytes);
      const alices = await upload(s, alice.token, bytes);
      const att = (key: string, over: Partial<Attachment> = {}): Attachment => ({ key, name: 'report.pdf', mime: 'application/pdf', size: bytes.length, ...over });
      const refusals: [string, Attachment, string][] = [
        ["bob's key", att(bobs.key), 'unknown attachment key'],
        ['a key never uploaded', att(newKey(alice.id)), 'unknown attachment key'],
        ['another size', att(alices.key, { size: bytes.length + 1 }), 'the attachment does not match its upload (size or type)'],
        ['another type', att(alices.key, { mime: 'image/png' }), 'the attachment does not match its upload (size or type)'],
        ['a bad name', att(alices.key, { name: 'a\nb' }), 'name must be 1 to 256 printable characters'],
        ...hostileKeys.map((k): [string, Attachment, string] => [`hostile ${JSON.stringify(k.slice(0, 40))}`, att(k), 'unknown attachment key']),
        ['a thumbnail key', att(`${alices.key}.thumb.jpg`), 'unknown attachment key'],
        ["bob's key under alice's prefix", att(bobs.key.replace(`u/${bob.id}/`, `u/${alice.id}/`)), 'unknown attachment key'],
      ];
      for (const [what, a, message] of refusals) {
        const sent = await s.send(alice.id, carol.id, a);
        assert.ok('error' in sent, `${what} was accepted`);
        assert.equal(sent.error.code, 'bad_request', what);
        assert.equal(sent.error.message, message, what);
      }
      // None of those refusals let carol read anything.
      for (const key of [bobs.key, alices.key]) assert.equal((await s.http(`/v1/attachments/${key}`, { token: carol.token })).status, 404);
      assert.ok('envelope' in (await s.send(alice.id, carol.id, att(alices.key))), 'the right declaration is accepted');
    });

    it('answers hostile keys in the download path with 404, never a redirect or a server error', async () => {
      const alice = await s.user();
      const { key } = await upload(s, alice.token, randomBytes(100));
      for (const hostile of [
        ...hostileKeys.map(encodeURIComponent),
        '../../etc/passwd',
        '..%2f..%2fetc%2fpasswd',
        '%2e%2e/%2e%2e/etc/passwd',
        `${key}/..`,
        `${key}%2f..%2f..`,
        `${key}%00`,
        `u/${alice.id}/${'A'.repeat(3000)}`,
        `u/${alice.id}/*`,
      ]) {
        const res = await s.http(`/v1/attachments/${hostile}`, { token: alice.token });
        assert.ok(res.status === 404 || res.status === 400, `${hostile.slice(0, 50)}: ${res.status}`);
        assert.equal(res.location, null);
      }
      const encoded = await s.http(`/v1/attachments/${encodeURIComponent(key)}`, { token: alice.token });
      assert.equal(encoded.status, 302, 'a percent-encoded key is the same key');
    });

    it('refuses an expired upload form and an expired download URL', async () => {
      const short = await startServer(backend, place, { uploadSeconds: 1, downloadSeconds: 1 });
      try {
        const [alice, bob] = [await short.user(), await short.user()];
        const late = await short.http('/v1/attachments', { token: alice.token, body: { name: 'a.txt', mime: 'text/plain', size: 5 } });
        const onTime = await upload(short, alice.token, Buffer.from('hello'), 'text/plain');
        assert.ok(onTime.stored.status < 300);
        assert.ok('envelope' in (await short.send(alice.id, bob.id, { key: onTime.key, name: 'a.txt', mime: 'text/plain', size: 5 })));
        const got = await short.http(`/v1/attachments/${onTime.key}`, { token: bob.token });
        assert.equal(got.status, 302);
        await sleep(2100);
        const stored = await postForm(short.origin, late.body.upload, Buffer.from('hello'));
        assert.equal(stored.status, 403, 'expired form');
        assert.equal((await getBytes(short.origin, got.location!)).status, 403, 'expired download URL');
        const fresh = await short.http(`/v1/attachments/${onTime.key}`, { token: bob.token });
        assert.equal((await getBytes(short.origin, fresh.location!)).body.toString(), 'hello', 'a new redirect works again');
      } finally {
        await short.stop();
      }
    });
  });
}
