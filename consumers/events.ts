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
 * Parses one record; null for anything that is not a v1 message event (skipped, never fatal). Each consumer
 * group parses its own records, so the result is the caller's alone (not frozen). A cache of the newest 8,192
 * parsed records used to let the archiver (50 ms linger) and the analytics jobs (1 s) parse each record once,
 * but it kept every parsed event alive past the analytics' linger: all of them were promoted to the consumer
 * thread's old generation, several MB a second at 5,000 msg/s, for one JSON.parse saved (bench/HISTORY.md,
 * round 22).
 */
export function parseEvent(value: string): MessageEvent | null {
  try {
    const e = JSON.parse(value) as MessageEvent;
    if (e && e.v === 1 && e.type === 'message' && e.message && typeof e.message.id === 'string' && Array.isArray(e.participants)) return e;
  } catch {
    /* not JSON */
  }
  return null;
}
