// The topic rules of PROTOCOL.md ("Topics"): what a signed-in user may publish to and subscribe to.
import { GROUP_ID, USER_ID } from '../common/envelope.ts';

export type SendTarget = { type: 'user'; id: string } | { type: 'group'; id: string };

/** Where refused publishes are sent: no client may subscribe here, so they go nowhere. */
export const VOID_TOPIC = '$parley/void';

export const inboxTopic = (userId: string) => `inbox/${userId}`;
export const presenceTopic = (userId: string) => `presence/${userId}`;

export function parseSendTopic(topic: string): SendTarget | null {
  const parts = topic.split('/');
  if (parts.length !== 3 || parts[0] !== 'send') return null;
  if (parts[1] === 'user' && USER_ID.test(parts[2])) return { type: 'user', id: parts[2] };
  if (parts[1] === 'group' && GROUP_ID.test(parts[2])) return { type: 'group', id: parts[2] };
  return null;
}

export type SubscriptionGrant = { kind: 'inbox'; qos: 0 | 1 } | { kind: 'presence'; user: string; qos: 0 } | null;

/**
 * A user may subscribe to its own inbox (QoS ≤ 1) and to one user's presence per topic. Wildcards are
 * refused outright: each of them could match another user's inbox or several presence topics.
 */
export function grantSubscription(userId: string, topic: string, qos: number): SubscriptionGrant {
  if (topic.includes('+') || topic.includes('#')) return null;
  if (topic === inboxTopic(userId)) return { kind: 'inbox', qos: qos >= 1 ? 1 : 0 };
  const parts = topic.split('/');
  if (parts.length === 2 && parts[0] === 'presence' && USER_ID.test(parts[1])) return { kind: 'presence', user: parts[1], qos: 0 };
  return null;
}
