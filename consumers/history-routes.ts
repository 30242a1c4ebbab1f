// History and sync API (PROTOCOL.md, "HTTP API"): only participants read a conversation.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AuthService } from '../auth/service.ts';
import { conversationOf, GROUP_ID, USER_ID } from '../common/envelope.ts';
import { badRequest, forbidden } from '../common/errors.ts';
import { ID_PATTERN } from '../common/ids.ts';
import type { Archive, ArchivedMessage } from './archive.ts';

const MAX_ID = 18446744073709551615n;

/** A `limit` of 1..200 (default 50) and an optional id cursor; anything else is a 400. */
function paging(req: FastifyRequest, cursor: 'before' | 'after'): { cursor?: string; limit: number } {
  const q = req.query as Record<string, unknown>;
  for (const key of Object.keys(q)) if (key !== cursor && key !== 'limit') throw badRequest(`unknown query parameter ${key}`);
  let limit = 50;
  if (q.limit !== undefined) {
    if (typeof q.limit !== 'string' || !/^[0-9]{1,3}$/.test(q.limit) || Number(q.limit) < 1 || Number(q.limit) > 200) throw badRequest('limit must be an integer from 1 to 200');
    limit = Number(q.limit);
  }
  const c = q[cursor];
  if (c === undefined) return { limit };
  if (typeof c !== 'string' || !ID_PATTERN.test(c) || BigInt(c) > MAX_ID) throw badRequest(`${cursor} must be a message id`);
  return { cursor: c, limit };
}

const page = (messages: ArchivedMessage[], limit: number) => ({ messages, next: messages.length === limit ? messages[messages.length - 1].id : null });

export interface GroupMembership {
  /** When the user joined the group (ms since the epoch), or null for a non-member. */
  joinedAt(groupId: string, userId: string): Promise<number | null>;
}

export function historyRoutes(app: FastifyInstance, auth: AuthService, archive: Archive, groups: GroupMembership): void {
  app.get('/v1/conversations', async (req) => {
    const { userId } = await auth.bearer(req.headers.authorization);
    return { conversations: await archive.conversations(userId, 200) };
  });

  app.get('/v1/conversations/user/:peer/messages', async (req) => {
    const { userId } = await auth.bearer(req.headers.authorization);
    const { peer } = req.params as { peer: string };
    if (!USER_ID.test(peer)) throw badRequest('not a user id');
    const { cursor, limit } = paging(req, 'before');
    // The conversation id is built from the caller, so no one can name another pair's conversation.
    return page(await archive.page(conversationOf({ from: userId, to: peer }), { before: cursor, limit }), limit);
  });

  app.get('/v1/conversations/group/:group/messages', async (req) => {
    const { userId } = await auth.bearer(req.headers.authorization);
    const { group } = req.params as { group: string };
    if (!GROUP_ID.test(group)) throw badRequest('not a group id');
    const { cursor, limit } = paging(req, 'before');
    const joined = await groups.joinedAt(group, userId);
    if (joined === null) throw forbidden('not a member of this group');
    // Members see the group's history from when they joined; the page ends there.
    const messages = await archive.page(conversationOf({ from: userId, to: userId, group }), { before: cursor, limit });
    const visible = messages.filter((m) => m.ts >= joined);
    return visible.length < messages.length ? { messages: visible, next: null } : page(visible, limit);
  });

  app.get('/v1/sync', async (req) => {
    const { userId } = await auth.bearer(req.headers.authorization);
    const { cursor, limit } = paging(req, 'after');
    return page(await archive.sync(userId, { after: cursor, limit }), limit);
  });
}
