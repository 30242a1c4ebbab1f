// The records on the event log (topic `parley.messages`, key = conversation id), as the broker writes
// them and the consumers read them.
import type { Envelope } from '../common/envelope.ts';

export interface MessageEvent {
  v: 1;
  type: 'message';
  /** How the sender was connected. */
  transport: 'tcp' | 'tls' | 'ws';
  /** Users who may read the message: the sender and every recipient. */
  participants: string[];
  message: Envelope;
}

/**
 * Parses one record; null for anything that is not a v1 message event (skipped, never fatal). The result is
 * frozen and shared: every consumer group in the process (archiver, five analytics jobs, notifier) reads
 * the same records, and the embedded event log hands them the same strings, so each record is parsed once.
 */
export function parseEvent(value: string): MessageEvent | null {
  const cached = parsed.get(value);
  if (cached !== undefined) return cached;
  const e = parse(value);
  parsed.set(value, e);
  if (parsed.size > PARSED_KEPT) parsed.delete(parsed.keys().next().value as string);
  return e;
}

/** The newest parsed records (a few seconds of traffic: the consumer groups read within about a second). */
const PARSED_KEPT = 8192;
const parsed = new Map<string, MessageEvent | null>();

function parse(value: string): MessageEvent | null {
  try {
    const e = JSON.parse(value) as MessageEvent;
    if (e && e.v === 1 && e.type === 'message' && e.message && typeof e.message.id === 'string' && Array.isArray(e.participants)) {
      Object.freeze(e.participants);
      if (e.message.attachment) Object.freeze(e.message.attachment);
      Object.freeze(e.message);
      return Object.freeze(e);
    }
  } catch {
    /* not JSON */
  }
  return null;
}
