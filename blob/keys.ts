// Object keys. The server chooses every key (`u/{userId}/{random}`), so anything else a client names is
// hostile or stale: it is refused before it reaches a store, a path or a URL (DESIGN.md, "Invariants").
import { randomBytes } from 'node:crypto';
import { USER_ID } from '../common/envelope.ts';
import { badRequest } from '../common/errors.ts';

const RANDOM = /^[A-Za-z0-9_-]{22}$/;
const THUMBNAIL_SUFFIX = '.thumb.jpg';
const MAX_KEY_LENGTH = 2 + 32 + 1 + 22 + THUMBNAIL_SUFFIX.length;

/** A fresh key under the user's prefix: 128 random bits, base64url. */
export function newKey(userId: string): string {
  if (!USER_ID.test(userId)) throw badRequest('invalid user id');
  return `u/${userId}/${randomBytes(16).toString('base64url')}`;
}

function parts(key: unknown): { owner: string; name: string } | null {
  if (typeof key !== 'string' || key.length > MAX_KEY_LENGTH) return null;
  const p = key.split('/');
  if (p.length !== 3 || p[0] !== 'u' || !USER_ID.test(p[1])) return null;
  return { owner: p[1], name: p[2] };
}

/** A key an upload was given (not a thumbnail). */
export function isUploadKey(key: unknown): key is string {
  const p = parts(key);
  return p !== null && RANDOM.test(p.name);
}

/** Any key a BlobStore holds: an upload or its thumbnail. */
export function isBlobKey(key: unknown): key is string {
  return uploadKeyOf(key) !== null;
}

/** The upload a key belongs to (itself, or the image of a thumbnail); null for anything else. */
export function uploadKeyOf(key: unknown): string | null {
  if (isUploadKey(key)) return key;
  if (typeof key === 'string' && key.endsWith(THUMBNAIL_SUFFIX)) {
    const base = key.slice(0, -THUMBNAIL_SUFFIX.length);
    if (isUploadKey(base)) return base;
  }
  return null;
}

export const thumbnailKey = (uploadKey: string): string => `${uploadKey}${THUMBNAIL_SUFFIX}`;

/** The user whose prefix holds the key; null for a key that is not one of ours. */
export function ownerOf(key: unknown): string | null {
  return isBlobKey(key) ? (key.split('/')[1] ?? null) : null;
}

/** Every BlobStore method starts here: a key that is not ours never reaches a path or a request. */
export function assertBlobKey(key: unknown): asserts key is string {
  if (!isBlobKey(key)) throw badRequest('invalid object key');
}
