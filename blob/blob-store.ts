// BlobStore port: the object storage behind attachments. Uploads and downloads never pass through
// Parley: the store itself enforces an upload's key, type, size and expiry (a presigned POST policy),
// and serves downloads through short-lived signed URLs. Only keys of keys.ts are accepted.

/** What one presigned upload allows. */
export interface UploadPolicy {
  key: string;
  /** The one content type the form may carry. */
  mime: string;
  /** Bounds of the file's length in bytes, inclusive. */
  minBytes: number;
  maxBytes: number;
  /** Recorded with the object, so a stat can say who uploaded it. */
  owner: string;
  expiresAt: Date;
}

/**
 * A browser-style upload: POST `url` as multipart/form-data with every field of `fields`, then the file
 * as the last part, named `file`. A relative `url` is on Parley's own HTTP server (embedded adapter).
 */
export interface PresignedPost {
  url: string;
  fields: Record<string, string>;
}

export interface BlobStat {
  size: number;
  mime: string;
  /** The uploader recorded with the object; null if the object carries none. */
  owner: string | null;
  modified: Date;
}

export interface BlobStore {
  readonly adapter: 'minio' | 'embedded';
  /** Creates the bucket (folder) if missing, keeps it private, applies the expiry rule. Idempotent. */
  ensureBucket(): Promise<void>;
  presignedPost(policy: UploadPolicy): Promise<PresignedPost>;
  /** A URL anyone holding it may GET for `expiresInSeconds`; relative for the embedded adapter. */
  presignedGet(key: string, expiresInSeconds: number): Promise<string>;
  /** null when there is no such object. */
  stat(key: string): Promise<BlobStat | null>;
  /** The object's bytes, or null when there is none; throws `too_large` past `maxBytes`. */
  read(key: string, maxBytes: number): Promise<Buffer | null>;
  /** A server-side write (thumbnails). */
  put(key: string, bytes: Buffer, meta: { mime: string; owner: string }): Promise<void>;
  /** Removes the object and its grants; removing what is not there is not an error. */
  delete(key: string): Promise<void>;
  /** Records that `readers` may download `key`. Grants only add; each call is one write, whatever the count. */
  grant(key: string, readers: readonly string[]): Promise<void>;
  isReader(key: string, userId: string): Promise<boolean>;
  ping(): Promise<boolean>;
  close(): Promise<void>;
}
