// BlobStore on MinIO (or any S3) through the `minio` client. Uploads are presigned POST policies, so
// MinIO itself refuses a wrong key, type, size or an expired form; downloads are presigned GETs.
// Grants live beside the objects as `acl/{key}/{id}.json`, one object per grant: S3 cannot update an
// object's metadata in place, and one new object per grant never races with another grant of the same key.
import http from 'node:http';
import https from 'node:https';
import { randomBytes } from 'node:crypto';
import * as Minio from 'minio';
import { tooLarge } from '../common/errors.ts';
import type { BlobStat, BlobStore, PresignedPost, UploadPolicy } from './blob-store.ts';
import { assertBlobKey } from './keys.ts';

export interface MinioBlobOptions {
  /** `http(s)://host:port` Parley reaches the store at. */
  endpoint: string;
  /** The address clients reach the store at, when it differs (signatures cover the host). */
  publicEndpoint?: string;
  accessKey: string;
  secretKey: string;
  bucket: string;
  region: string;
  /** A bucket lifecycle rule expires objects this many days old; 0 removes Parley's rule. */
  expireDays: number;
}

export const LIFECYCLE_RULE_ID = 'parley-expire-attachments';
const GRANTS = 'acl/';
/** Most grants read for one access check: a key is shared by a few messages, not thousands. */
const MAX_GRANTS = 1000;

type Lifecycle = { Rule: Minio.LifecycleRule[] };

export class MinioBlobStore implements BlobStore {
  readonly adapter = 'minio';
  private readonly s3: Minio.Client;
  private readonly signer: Minio.Client;
  private readonly agents: http.Agent[] = [];

  constructor(private readonly opts: MinioBlobOptions) {
    this.s3 = this.client(opts.endpoint);
    this.signer = opts.publicEndpoint ? this.client(opts.publicEndpoint) : this.s3;
  }

  private client(endpoint: string): Minio.Client {
    const url = new URL(endpoint);
    const useSSL = url.protocol === 'https:';
    const agent = useSSL ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
    this.agents.push(agent);
    return new Minio.Client({
      endPoint: url.hostname,
      port: Number(url.port || (useSSL ? 443 : 80)),
      useSSL,
      accessKey: this.opts.accessKey,
      secretKey: this.opts.secretKey,
      // With the region given, presigning needs no request to the server.
      region: this.opts.region,
      transportAgent: agent,
    });
  }

  async ensureBucket(): Promise<void> {
    const { bucket, region } = this.opts;
    if (!(await this.s3.bucketExists(bucket))) {
      await this.s3.makeBucket(bucket, region).catch((err: { code?: string }) => {
        // Another node created it first.
        if (err.code !== 'BucketAlreadyOwnedByYou' && err.code !== 'BucketAlreadyExists') throw err;
      });
    }
    await this.keepPrivate();
    await this.applyLifecycle();
  }

  /** A new bucket is private; a bucket policy that lets anyone in is removed. */
  private async keepPrivate(): Promise<void> {
    const text = await this.s3.getBucketPolicy(this.opts.bucket).catch((err: { code?: string }) => {
      if (err.code === 'NoSuchBucketPolicy') return '';
      throw err;
    });
    if (text && isPublicPolicy(text)) await this.s3.setBucketPolicy(this.opts.bucket, '');
  }

  private async applyLifecycle(): Promise<void> {
    const { bucket, expireDays } = this.opts;
    const current = await this.s3.getBucketLifecycle(bucket).catch((err: { code?: string }) => {
      if (err.code === 'NoSuchLifecycleConfiguration') return null;
      throw err;
    });
    const others = lifecycleRules(current).filter((r) => r.ID !== LIFECYCLE_RULE_ID);
    const rules: Minio.LifecycleRule[] =
      expireDays > 0 ? [...others, { ID: LIFECYCLE_RULE_ID, Status: 'Enabled', Filter: { Prefix: '' }, Expiration: { Days: expireDays } }] : others;
    if (rules.length > 0) await this.s3.setBucketLifecycle(bucket, { Rule: rules });
    else if (current) await this.s3.removeBucketLifecycle(bucket);
  }

  /** The bucket's lifecycle rules as MinIO reports them (for tests and operators). */
  async lifecycle(): Promise<Minio.LifecycleRule[]> {
    return lifecycleRules(await this.s3.getBucketLifecycle(this.opts.bucket).catch(() => null));
  }

  async presignedPost(p: UploadPolicy): Promise<PresignedPost> {
    assertBlobKey(p.key);
    const policy = this.signer.newPostPolicy();
    policy.setBucket(this.opts.bucket);
    policy.setKey(p.key);
    policy.setContentType(p.mime);
    policy.setContentLengthRange(p.minBytes, p.maxBytes);
    policy.setExpires(p.expiresAt);
    policy.setUserMetaData({ owner: p.owner });
    const { postURL, formData } = await this.signer.presignedPostPolicy(policy);
    return { url: postURL, fields: Object.fromEntries(Object.entries(formData).map(([k, v]) => [k, String(v)])) };
  }

  async presignedGet(key: string, expiresInSeconds: number): Promise<string> {
    assertBlobKey(key);
    // A download, never a page: HTML or SVG uploaded as an attachment does not render on the store's origin.
    return this.signer.presignedGetObject(this.opts.bucket, key, Math.max(1, Math.ceil(expiresInSeconds)), {
      'response-content-disposition': 'attachment',
    });
  }

  async stat(key: string): Promise<BlobStat | null> {
    assertBlobKey(key);
    const st = await this.s3.statObject(this.opts.bucket, key).catch(ifNotFound(null));
    if (!st) return null;
    const meta = st.metaData as Record<string, string | undefined>;
    return { size: st.size, mime: meta['content-type'] ?? 'application/octet-stream', owner: meta.owner ?? null, modified: st.lastModified };
  }

  async read(key: string, maxBytes: number): Promise<Buffer | null> {
    const st = await this.stat(key);
    if (!st) return null;
    if (st.size > maxBytes) throw tooLarge(`the object exceeds ${maxBytes} bytes`);
    const stream = await this.s3.getObject(this.opts.bucket, key).catch(ifNotFound(null));
    if (!stream) return null;
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBytes) {
        stream.destroy();
        throw tooLarge(`the object exceeds ${maxBytes} bytes`);
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  }

  async put(key: string, bytes: Buffer, meta: { mime: string; owner: string }): Promise<void> {
    assertBlobKey(key);
    await this.s3.putObject(this.opts.bucket, key, bytes, bytes.length, { 'Content-Type': meta.mime, 'X-Amz-Meta-Owner': meta.owner });
  }

  async delete(key: string): Promise<void> {
    assertBlobKey(key);
    await this.s3.removeObject(this.opts.bucket, key);
    const grants = await this.grantNames(key);
    if (grants.length > 0) await this.s3.removeObjects(this.opts.bucket, grants);
  }

  async grant(key: string, readers: readonly string[]): Promise<void> {
    assertBlobKey(key);
    if (readers.length === 0) return;
    const name = `${GRANTS}${key}/${Date.now()}-${randomBytes(6).toString('hex')}.json`;
    const body = Buffer.from(JSON.stringify({ readers }));
    await this.s3.putObject(this.opts.bucket, name, body, body.length, { 'Content-Type': 'application/json' });
  }

  async isReader(key: string, userId: string): Promise<boolean> {
    assertBlobKey(key);
    for (const name of await this.grantNames(key)) {
      const stream = await this.s3.getObject(this.opts.bucket, name).catch(ifNotFound(null));
      if (!stream) continue;
      const chunks: Buffer[] = [];
      for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
      const { readers } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { readers: string[] };
      if (readers.includes(userId)) return true;
    }
    return false;
  }

  private async grantNames(key: string): Promise<string[]> {
    const names: string[] = [];
    const stream = this.s3.listObjectsV2(this.opts.bucket, `${GRANTS}${key}/`, true);
    for await (const item of stream as AsyncIterable<{ name?: string }>) {
      if (item.name) names.push(item.name);
      if (names.length >= MAX_GRANTS) {
        stream.destroy();
        break;
      }
    }
    return names;
  }

  async ping(): Promise<boolean> {
    return this.s3.bucketExists(this.opts.bucket).catch(() => false);
  }

  async close(): Promise<void> {
    for (const agent of this.agents) agent.destroy();
  }
}

function lifecycleRules(config: unknown): Minio.LifecycleRule[] {
  // The client returns one rule as an object and several as an array.
  const rule = (config as Lifecycle | null)?.Rule;
  return rule === undefined ? [] : Array.isArray(rule) ? rule : [rule as Minio.LifecycleRule];
}

function isPublicPolicy(text: string): boolean {
  try {
    const statements = (JSON.parse(text) as { Statement?: { Effect?: string; Principal?: unknown }[] }).Statement ?? [];
    return statements.some((s) => s.Effect === 'Allow' && JSON.stringify(s.Principal ?? '').includes('"*"'));
  } catch {
    return false;
  }
}

function ifNotFound<T>(value: T): (err: { code?: string }) => T {
  return (err) => {
    if (err.code === 'NotFound' || err.code === 'NoSuchKey') return value;
    throw err;
  };
}
