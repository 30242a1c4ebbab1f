// What clients send and receive (PROTOCOL.md, "What a client sends" / "What a client receives").
import { badRequest, tooLarge, type ParleyError } from './errors.ts';
import { ID_PATTERN } from './ids.ts';

export const USER_ID = /^[a-z0-9][a-z0-9._-]{1,31}$/;
export const GROUP_ID = /^[A-Za-z0-9_-]{1,64}$/;
export const CID = /^[A-Za-z0-9_-]{1,64}$/;

export type Kind = 'text' | 'attachment' | 'receipt' | 'typing';
const KINDS = new Set<Kind>(['text', 'attachment', 'receipt', 'typing']);

export interface Attachment {
  key: string;
  name: string;
  mime: string;
  size: number;
  /** Set by the server for images: the key of a small JPEG preview, readable by the same people. */
  thumbnail?: string;
}

/** A client's message after validation. */
export interface Outgoing {
  cid: string;
  kind: Kind;
  body?: string;
  attachment?: Attachment;
  ref?: string;
  state?: 'delivered' | 'read';
}

/** A chat message as stored, delivered and archived. */
export interface Envelope extends Outgoing {
  id: string;
  from: string;
  to: string;
  group?: string;
  ts: number;
}

export interface ValidationFailure {
  error: ParleyError;
  /** The cid, echoed only when it was valid. */
  cid?: string;
}

const isString = (v: unknown): v is string => typeof v === 'string';
/**
 * A refusal that echoes the (valid) cid. Module-level rather than a closure in parseOutgoing: under tsx
 * (keepNames) every function created on the hot path also costs an Object.defineProperty of its name.
 */
const fail = (cid: string, error: ParleyError): ValidationFailure => ({ error, cid });

/**
 * The largest `send/...` payload a valid message can come to: JSON may write each byte of the body as
 * `\u00XX` (six bytes, as encoders that escape control characters or everything past ASCII do), and the
 * other fields (cid, attachment name, key and mime, escaped alike) fit in 8 KiB.
 */
export function maxPayloadBytes(maxBodyBytes: number): number {
  return maxBodyBytes * 6 + 8192;
}

/**
 * Parses and checks a `send/...` payload. Unknown fields are dropped, never passed on: a client cannot
 * smuggle `from`, `id` or `ts` into what recipients see.
 */
export function parseOutgoing(payload: Buffer, maxBodyBytes: number): Outgoing | ValidationFailure {
  // A payload past what any valid message can take is refused before it is parsed.
  const limit = maxPayloadBytes(maxBodyBytes);
  if (payload.length > limit) return { error: tooLarge(`payload exceeds ${limit} bytes`) };
  let raw: unknown;
  try {
    raw = JSON.parse(payload.toString('utf8'));
  } catch {
    return { error: badRequest('payload is not valid JSON') };
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return { error: badRequest('payload must be a JSON object') };
  const o = raw as Record<string, unknown>;
  if (!isString(o.cid) || !CID.test(o.cid)) return { error: badRequest('cid must be 1-64 characters of [A-Za-z0-9_-]') };
  const cid = o.cid;
  const kind = o.kind === undefined ? 'text' : o.kind;
  if (!isString(kind) || !KINDS.has(kind as Kind)) return fail(cid, badRequest('kind must be text, attachment, receipt or typing'));
  const out: Outgoing = { cid, kind: kind as Kind };
  if (o.body !== undefined) {
    if (!isString(o.body)) return fail(cid, badRequest('body must be a string'));
    if (Buffer.byteLength(o.body, 'utf8') > maxBodyBytes) return fail(cid, tooLarge(`body exceeds ${maxBodyBytes} bytes`));
    out.body = o.body;
  }
  switch (out.kind) {
    case 'text':
      if (out.body === undefined || out.body.length === 0) return fail(cid, badRequest('a text message needs a non-empty body'));
      break;
    case 'attachment': {
      const a = o.attachment as Record<string, unknown> | undefined;
      if (!a || typeof a !== 'object' || !isString(a.key) || !isString(a.name) || !isString(a.mime) || typeof a.size !== 'number')
        return fail(cid, badRequest('an attachment message needs attachment {key,name,mime,size}'));
      if (a.key.length > 256 || a.name.length > 256 || a.mime.length > 128 || !Number.isSafeInteger(a.size) || a.size < 0)
        return fail(cid, badRequest('attachment fields out of range'));
      out.attachment = { key: a.key, name: a.name, mime: a.mime, size: a.size };
      break;
    }
    case 'receipt':
      if (!isString(o.ref) || !ID_PATTERN.test(o.ref)) return fail(cid, badRequest('a receipt needs ref, the id of a received message'));
      if (o.state !== 'delivered' && o.state !== 'read') return fail(cid, badRequest('a receipt state is delivered or read'));
      out.ref = o.ref;
      out.state = o.state;
      break;
    case 'typing':
      break;
  }
  return out;
}

export const isFailure = (v: Outgoing | ValidationFailure): v is ValidationFailure => 'error' in v;

export function ackEnvelope(cid: string, id: string, ts: number): string {
  return JSON.stringify({ kind: 'ack', cid, id, ts });
}

export function errorEnvelope(error: ParleyError, cid?: string): string {
  return JSON.stringify(cid === undefined ? { kind: 'error', code: error.code, message: error.message } : { kind: 'error', cid, code: error.code, message: error.message });
}

export function presenceEnvelope(user: string, state: 'online' | 'offline', ts: number): string {
  return JSON.stringify({ kind: 'presence', user, state, ts });
}

/** Serialises an envelope once; the same bytes go to the queue, to every device and to the event log. */
export function encodeEnvelope(e: Envelope): string {
  return JSON.stringify(e);
}

/** The conversation a message belongs to: `u:{a}:{b}` (the two users sorted) or `g:{groupId}`. */
export function conversationOf(message: Pick<Envelope, 'from' | 'to' | 'group'>): string {
  if (message.group) return `g:${message.group}`;
  return message.from < message.to ? `u:${message.from}:${message.to}` : `u:${message.to}:${message.from}`;
}
