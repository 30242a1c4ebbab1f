// Attachments (PROTOCOL.md, `POST /v1/attachments`, `GET /v1/attachments/{key}`, kind `attachment`): the
// server picks the key and the store enforces the upload; a message may carry a key only if its sender
// uploaded exactly what the message declares; who may download is recorded when the message is accepted.
import type { Attachment } from '../common/envelope.ts';
import { badRequest, notFound, tooLarge } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import type { BlobStore } from './blob-store.ts';
import { isUploadKey, newKey, ownerOf, thumbnailKey, uploadKeyOf } from './keys.ts';
import { isMime, typeAllowed } from './mime.ts';
import { canThumbnail, makeThumbnail, THUMBNAIL_MIME } from './thumbnails.ts';

export interface AttachmentSettings {
  /** PARLEY_MAX_ATTACHMENT_BYTES */
  maxBytes: number;
  /** PARLEY_ATTACHMENT_TYPES, parsed: `type/subtype` or `type/*`. */
  types: readonly string[];
  /** PARLEY_ATTACHMENT_UPLOAD_SECONDS: how long an upload form is valid. */
  uploadSeconds: number;
  /** PARLEY_ATTACHMENT_DOWNLOAD_SECONDS: how long a download URL is valid. */
  downloadSeconds: number;
  /** PARLEY_ATTACHMENT_THUMBNAILS */
  thumbnails: boolean;
}

export interface UploadTicket {
  key: string;
  upload: { url: string; method: 'POST'; fields: Record<string, string> };
  expiresAt: string;
}

/** An attachment as the broker delivers it: what the sender declared, plus the server's thumbnail. */
export interface CheckedAttachment extends Attachment {
  thumbnail?: string;
}

const MAX_NAME = 256;
// One refusal for a key that is missing, malformed or someone else's: the answer says nothing about which.
const unknownKey = () => badRequest('unknown attachment key');

export interface AttachmentDeps {
  store: BlobStore;
  settings: Readonly<AttachmentSettings>;
  log: Logger;
}

export class AttachmentService {
  /** Thumbnails being made, so two messages with one new image make it once. */
  private readonly making = new Map<string, Promise<string | undefined>>();

  constructor(private readonly deps: AttachmentDeps) {}

  /** `POST /v1/attachments {name,mime,size}`: a key under the user's prefix and a form the store enforces. */
  async createUpload(userId: string, input: { name?: unknown; mime?: unknown; size?: unknown }): Promise<UploadTicket> {
    const { settings, store } = this.deps;
    checkName(input.name);
    const mime = checkMime(input.mime, settings.types);
    const size = input.size;
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 1) throw badRequest('size must be a positive whole number of bytes');
    if (size > settings.maxBytes) throw tooLarge(`attachments are at most ${settings.maxBytes} bytes`);
    const key = newKey(userId);
    const expiresAt = new Date(Date.now() + settings.uploadSeconds * 1000);
    // The exact declared size: the store refuses any other length, so the declaration can be trusted later.
    const post = await store.presignedPost({ key, mime, minBytes: size, maxBytes: size, owner: userId, expiresAt });
    return { key, upload: { url: post.url, method: 'POST', fields: post.fields }, expiresAt: expiresAt.toISOString() };
  }

  /**
   * Before a message of kind `attachment` is accepted: the key is the sender's, the object exists, and
   * its stored size and type are what the message says. Returns the attachment to deliver.
   */
  async checkAttachment(sender: string, a: Attachment): Promise<CheckedAttachment> {
    if (!isUploadKey(a.key) || ownerOf(a.key) !== sender) throw unknownKey();
    checkName(a.name);
    if (!isMime(a.mime)) throw badRequest('attachment mime must be a lowercase type/subtype');
    const st = await this.deps.store.stat(a.key);
    if (!st || (st.owner !== null && st.owner !== sender)) throw unknownKey();
    if (st.size !== a.size || st.mime !== a.mime) throw badRequest('the attachment does not match its upload (size or type)');
    const thumbnail = await this.thumbnail(a.key, st.mime, sender);
    const checked: CheckedAttachment = { key: a.key, name: a.name, mime: a.mime, size: a.size };
    if (thumbnail) checked.thumbnail = thumbnail;
    return checked;
  }

  /** Records that the recipients of an accepted message may download the key (and its thumbnail). */
  async grant(key: string, recipients: readonly string[]): Promise<void> {
    if (!isUploadKey(key)) throw unknownKey();
    const owner = ownerOf(key);
    const readers = [...new Set(recipients)].filter((u) => u !== owner);
    await this.deps.store.grant(key, readers);
  }

  /** `GET /v1/attachments/{key}`: a short-lived URL for the uploader and granted readers; not_found for anyone else. */
  async download(userId: string, key: string): Promise<string> {
    const upload = uploadKeyOf(key);
    if (!upload) throw notFound('no such attachment');
    const { store, settings } = this.deps;
    if (ownerOf(upload) !== userId && !(await store.isReader(upload, userId))) throw notFound('no such attachment');
    if (!(await store.stat(key))) throw notFound('no such attachment');
    return store.presignedGet(key, settings.downloadSeconds);
  }

  private async thumbnail(key: string, mime: string, owner: string): Promise<string | undefined> {
    if (!this.deps.settings.thumbnails || !canThumbnail(mime)) return undefined;
    const existing = this.making.get(key);
    if (existing) return existing;
    const work = this.makeThumbnail(key, owner).finally(() => this.making.delete(key));
    this.making.set(key, work);
    return work;
  }

  private async makeThumbnail(key: string, owner: string): Promise<string | undefined> {
    const { store, settings, log } = this.deps;
    const thumb = thumbnailKey(key);
    if (await store.stat(thumb)) return thumb;
    try {
      const image = await store.read(key, settings.maxBytes);
      if (!image) return undefined;
      const jpeg = await makeThumbnail(image);
      if (!jpeg) return undefined;
      await store.put(thumb, jpeg, { mime: THUMBNAIL_MIME, owner });
      return thumb;
    } catch (err) {
      // A picture sharp cannot read, or a store hiccup here, still lets the message go out, without a preview.
      log.warn({ err: (err as Error).message, key }, 'no thumbnail for this image');
      return undefined;
    }
  }
}

function checkName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME || /[\u0000-\u001f\u007f]/.test(name))
    throw badRequest(`name must be 1 to ${MAX_NAME} printable characters`);
}

function checkMime(mime: unknown, allowed: readonly string[]): string {
  if (!isMime(mime)) throw badRequest('mime must be a lowercase type/subtype');
  if (!typeAllowed(mime, allowed)) throw badRequest(`attachments of type ${mime} are not allowed`);
  return mime;
}
