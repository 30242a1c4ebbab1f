// BlobStore in a local folder (`{dataDir}/blobs`), for `npm start` with no servers. It plays the object
// store's part itself: uploads and downloads go to blob/routes.ts, which hands them here, and are allowed by
// HMAC-signed, expiring policies and URLs in the shape S3 uses (a POST form whose fields carry the policy).
//
//   .secret                             HMAC key, made on first start (every process on the folder shares it)
//   objects/u/{user}/{random}[.thumb.jpg]  the bytes
//   meta/u/{user}/{random}[...].json       {size, mime, owner, created}; written after the bytes, so it marks a complete object
//   grants/u/{user}/{random}/{id}.json     {readers}; one file per grant, never rewritten
//   tmp/                                   uploads in progress
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { badRequest, forbidden, notFound, tooLarge } from '../common/errors.ts';
import type { BlobStat, BlobStore, PresignedPost, UploadPolicy } from './blob-store.ts';
import { assertBlobKey, isBlobKey } from './keys.ts';
import { isMime } from './mime.ts';
import { Upload } from './embedded-upload.ts';
import { boundaryOf } from './multipart.ts';

export interface EmbeddedBlobOptions {
  /** The store's folder, usually `{dataDir}/blobs`. */
  dir: string;
  /** Objects older than this many days are removed by a sweep at start and every few hours; 0 keeps them. */
  expireDays: number;
  /** The largest upload request read at all (the largest attachment plus room for the form's fields). */
  maxUploadBytes: number;
  fsync?: boolean;
  /** Where blob/routes.ts serves this store. */
  basePath?: string;
}

interface Meta {
  size: number;
  mime: string;
  owner: string;
  created: number;
}

/** The signed part of an upload form (base64url JSON in the `policy` field). */
export interface SignedPolicy {
  key: string;
  mime: string;
  min: number;
  max: number;
  owner: string;
  /** Unix seconds. */
  exp: number;
}

export interface OpenedBlob {
  file: string;
  size: number;
  mime: string;
}

const SIGNATURE_FIELD = 'x-parley-signature';
const SWEEP_EVERY_MS = 6 * 3600_000;
const DAY_MS = 86400_000;

export class EmbeddedBlobStore implements BlobStore {
  readonly adapter = 'embedded';
  readonly basePath: string;
  private readonly root: string;
  private readonly secret: Buffer;
  private readonly fsync: boolean;
  private sweeper: NodeJS.Timeout | null = null;

  constructor(private readonly opts: EmbeddedBlobOptions) {
    this.root = path.resolve(opts.dir);
    this.fsync = opts.fsync ?? true;
    this.basePath = opts.basePath ?? '/v1/blobs';
    fs.mkdirSync(this.root, { recursive: true, mode: 0o700 });
    this.secret = loadSecret(path.join(this.root, '.secret'));
  }

  async ensureBucket(): Promise<void> {
    for (const sub of ['objects', 'meta', 'grants', 'tmp']) await fsp.mkdir(path.join(this.root, sub), { recursive: true, mode: 0o700 });
    await fsp.chmod(this.root, 0o700);
    if (this.opts.expireDays > 0 && !this.sweeper) {
      await this.expire();
      this.sweeper = setInterval(() => void this.expire().catch(() => undefined), SWEEP_EVERY_MS).unref();
    }
  }

  async presignedPost(p: UploadPolicy): Promise<PresignedPost> {
    assertBlobKey(p.key);
    if (!isMime(p.mime)) throw badRequest('invalid content type');
    // Rounded up to the second: a form never expires before the time it was given (rounding down cut up to a
    // second off, so a one-second form could be expired at once).
    const signed: SignedPolicy = { key: p.key, mime: p.mime, min: p.minBytes, max: p.maxBytes, owner: p.owner, exp: Math.ceil(p.expiresAt.getTime() / 1000) };
    const policy = Buffer.from(JSON.stringify(signed)).toString('base64url');
    return {
      url: this.basePath,
      fields: { key: p.key, 'Content-Type': p.mime, policy, [SIGNATURE_FIELD]: this.sign(`POST\n${policy}`) },
    };
  }

  async presignedGet(key: string, expiresInSeconds: number): Promise<string> {
    assertBlobKey(key);
    const exp = Math.floor(Date.now() / 1000) + Math.max(1, Math.ceil(expiresInSeconds));
    return `${this.basePath}/${key}?exp=${exp}&sig=${this.sign(`GET\n${key}\n${exp}`)}`;
  }

  async stat(key: string): Promise<BlobStat | null> {
    const meta = await this.meta(key);
    if (!meta) return null;
    return { size: meta.size, mime: meta.mime, owner: meta.owner, modified: new Date(meta.created) };
  }

  async read(key: string, maxBytes: number): Promise<Buffer | null> {
    const meta = await this.meta(key);
    if (!meta) return null;
    if (meta.size > maxBytes) throw tooLarge(`the object exceeds ${maxBytes} bytes`);
    return fsp.readFile(this.pathOf('objects', key)).catch(ifMissing(null));
  }

  async put(key: string, bytes: Buffer, meta: { mime: string; owner: string }): Promise<void> {
    assertBlobKey(key);
    if (!isMime(meta.mime)) throw badRequest('invalid content type');
    const tmp = this.tmpFile();
    await this.writeAtomic(tmp, this.pathOf('objects', key), bytes);
    await this.writeMeta(key, { size: bytes.length, mime: meta.mime, owner: meta.owner, created: Date.now() });
  }

  async delete(key: string): Promise<void> {
    assertBlobKey(key);
    // The meta first: an object without meta is already gone for every reader.
    await fsp.rm(this.pathOf('meta', key) + '.json', { force: true });
    await fsp.rm(this.pathOf('objects', key), { force: true });
    await fsp.rm(this.pathOf('grants', key), { recursive: true, force: true });
  }

  async grant(key: string, readers: readonly string[]): Promise<void> {
    assertBlobKey(key);
    if (readers.length === 0) return;
    const file = path.join(this.pathOf('grants', key), `${Date.now()}-${randomBytes(6).toString('hex')}.json`);
    await this.writeAtomic(this.tmpFile(), file, Buffer.from(JSON.stringify({ readers })));
  }

  async isReader(key: string, userId: string): Promise<boolean> {
    assertBlobKey(key);
    const dir = this.pathOf('grants', key);
    const files = await fsp.readdir(dir).catch(ifMissing([] as string[]));
    for (const f of files) {
      if (!f.endsWith('.json')) continue;
      const text = await fsp.readFile(path.join(dir, f), 'utf8').catch(ifMissing(''));
      if (!text) continue;
      const { readers } = JSON.parse(text) as { readers: string[] };
      if (readers.includes(userId)) return true;
    }
    return false;
  }

  async ping(): Promise<boolean> {
    return fsp.access(path.join(this.root, 'objects'), fs.constants.W_OK).then(
      () => true,
      () => false,
    );
  }

  async close(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
  }

  /** Removes objects older than `expireDays` and uploads abandoned for a day; returns how many objects went. */
  async expire(now = Date.now()): Promise<number> {
    let removed = 0;
    const metaRoot = path.join(this.root, 'meta', 'u');
    if (this.opts.expireDays > 0) {
      const cutoff = now - this.opts.expireDays * DAY_MS;
      for (const user of await fsp.readdir(metaRoot).catch(ifMissing([] as string[]))) {
        for (const f of await fsp.readdir(path.join(metaRoot, user)).catch(ifMissing([] as string[]))) {
          const key = `u/${user}/${f.replace(/\.json$/, '')}`;
          if (!f.endsWith('.json') || !isBlobKey(key)) continue;
          const meta = await this.meta(key);
          if (meta && meta.created < cutoff) {
            await this.delete(key);
            removed++;
          }
        }
      }
    }
    const tmp = path.join(this.root, 'tmp');
    for (const f of await fsp.readdir(tmp).catch(ifMissing([] as string[]))) {
      const st = await fsp.stat(path.join(tmp, f)).catch(ifMissing(null));
      if (st && st.mtimeMs < now - DAY_MS) await fsp.rm(path.join(tmp, f), { force: true });
    }
    return removed;
  }

  /**
   * Takes one upload (POST multipart/form-data: the policy's fields, then `file`), checking what S3
   * checks: the signature, the expiry, the key and type against the policy, the size against its range.
   */
  async receiveUpload(contentType: string | undefined, contentLength: number | null, body: AsyncIterable<Buffer>): Promise<void> {
    const boundary = boundaryOf(contentType);
    if (!boundary) throw badRequest('the upload must be multipart/form-data');
    if (contentLength !== null && contentLength > this.opts.maxUploadBytes) throw tooLarge(`the upload exceeds ${this.opts.maxUploadBytes} bytes`);
    const upload = new Upload(this, boundary);
    let total = 0;
    let failure: unknown = null;
    try {
      for await (const chunk of body) {
        total += chunk.length;
        // Past this the rest is not even read: the connection is dropped.
        if (total > this.opts.maxUploadBytes) throw tooLarge(`the upload exceeds ${this.opts.maxUploadBytes} bytes`);
        // After a refusal the body is still drained (it is bounded above), so the client reads the answer.
        if (failure === null) await upload.feed(chunk).catch((err) => (failure = err));
      }
      if (failure !== null) throw failure;
      await upload.finish();
    } finally {
      await upload.discard();
    }
  }

  /** The file behind a download URL, once its signature and expiry check out. */
  async openDownload(key: string, exp: unknown, sig: unknown): Promise<OpenedBlob> {
    if (!isBlobKey(key) || typeof exp !== 'string' || !/^\d{1,12}$/.test(exp) || typeof sig !== 'string') throw forbidden('invalid signature');
    if (!this.verify(`GET\n${key}\n${exp}`, sig)) throw forbidden('invalid signature');
    if (Number(exp) * 1000 < Date.now()) throw forbidden('the URL has expired');
    const meta = await this.meta(key);
    if (!meta) throw notFound('no such object');
    return { file: this.pathOf('objects', key), size: meta.size, mime: meta.mime };
  }

  /** @internal for Upload */
  checkPolicy(fields: Map<string, string>): SignedPolicy {
    const policy = fields.get('policy');
    const sig = fields.get(SIGNATURE_FIELD);
    if (!policy || !sig || !this.verify(`POST\n${policy}`, sig)) throw forbidden('invalid policy signature');
    const p = JSON.parse(Buffer.from(policy, 'base64url').toString('utf8')) as SignedPolicy;
    if (p.exp * 1000 < Date.now()) throw forbidden('the upload policy has expired');
    if (fields.get('key') !== p.key || !isBlobKey(p.key)) throw forbidden('the key does not match the policy');
    if (fields.get('content-type') !== p.mime) throw forbidden('the content type does not match the policy');
    return p;
  }

  /** @internal for Upload */
  tmpFile(): string {
    return path.join(this.root, 'tmp', `${Date.now()}-${randomBytes(8).toString('hex')}`);
  }

  /** @internal for Upload: moves a finished upload into place, then its meta (which makes it visible). */
  async commit(tmp: string, p: SignedPolicy, size: number): Promise<void> {
    const file = this.pathOf('objects', p.key);
    await fsp.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await fsp.rename(tmp, file);
    await this.writeMeta(p.key, { size, mime: p.mime, owner: p.owner, created: Date.now() });
  }

  get syncWrites(): boolean {
    return this.fsync;
  }

  private async meta(key: string): Promise<Meta | null> {
    assertBlobKey(key);
    const text = await fsp.readFile(this.pathOf('meta', key) + '.json', 'utf8').catch(ifMissing(null));
    return text === null ? null : (JSON.parse(text) as Meta);
  }

  private writeMeta(key: string, meta: Meta): Promise<void> {
    return this.writeAtomic(this.tmpFile(), this.pathOf('meta', key) + '.json', Buffer.from(JSON.stringify(meta)));
  }

  private async writeAtomic(tmp: string, file: string, data: Buffer): Promise<void> {
    const handle = await fsp.open(tmp, 'wx', 0o600);
    try {
      await handle.writeFile(data);
      if (this.fsync) await handle.sync();
    } finally {
      await handle.close();
    }
    await fsp.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await fsp.rename(tmp, file);
  }

  /** The path of a key under one of the store's trees; the key's grammar already rules out `..`, this makes sure. */
  private pathOf(tree: 'objects' | 'meta' | 'grants', key: string): string {
    assertBlobKey(key);
    const base = path.join(this.root, tree);
    const file = path.resolve(base, ...key.split('/'));
    if (!file.startsWith(base + path.sep)) throw badRequest('invalid object key');
    return file;
  }

  private sign(text: string): string {
    return createHmac('sha256', this.secret).update(text).digest('hex');
  }

  private verify(text: string, sig: string): boolean {
    if (!/^[0-9a-f]{64}$/.test(sig)) return false;
    return timingSafeEqual(Buffer.from(this.sign(text), 'hex'), Buffer.from(sig, 'hex'));
  }
}

function loadSecret(file: string): Buffer {
  // Written aside and linked into place: a process starting at the same moment sees all of it or none.
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  fs.writeFileSync(tmp, randomBytes(32).toString('hex'), { mode: 0o600 });
  try {
    fs.linkSync(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  const hex = fs.readFileSync(file, 'utf8').trim();
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`${file} is not a blob store secret (64 hex digits)`);
  return Buffer.from(hex, 'hex');
}

function ifMissing<T>(value: T): (err: NodeJS.ErrnoException) => T {
  return (err) => {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return value;
    throw err;
  };
}
