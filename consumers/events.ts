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

/** Parses one record; null for anything that is not a v1 message event (skipped, never fatal). */
export function parseEvent(value: string): MessageEvent | null {
  try {
    const e = JSON.parse(value) as MessageEvent;
    if (e && e.v === 1 && e.type === 'message' && e.message && typeof e.message.id === 'string' && Array.isArray(e.participants)) return e;
  } catch {
    /* not JSON */
  }
  return null;
}
