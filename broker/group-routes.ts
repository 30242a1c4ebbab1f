import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AuthService } from '../auth/service.ts';
import { GROUP_ID, USER_ID } from '../common/envelope.ts';
import { badRequest } from '../common/errors.ts';
import type { GroupService } from './group-service.ts';

export function groupRoutes(app: FastifyInstance, auth: AuthService, groups: GroupService): void {
  const groupId = (req: FastifyRequest) => {
    const { id } = req.params as { id: string };
    if (!GROUP_ID.test(id)) throw badRequest('not a group id');
    return id;
  };
  const body = (req: FastifyRequest) => (req.body && typeof req.body === 'object' && !Array.isArray(req.body) ? (req.body as Record<string, unknown>) : {});

  app.post('/v1/groups', async (req, reply) => {
    const { userId } = await auth.bearer(req.headers.authorization);
    return reply.status(201).send(await groups.create(userId, body(req)));
  });

  app.get('/v1/groups/:id', async (req) => {
    const { userId } = await auth.bearer(req.headers.authorization);
    return groups.get(userId, groupId(req));
  });

  app.post('/v1/groups/:id/members', async (req) => {
    const { userId } = await auth.bearer(req.headers.authorization);
    return groups.addMember(userId, groupId(req), body(req));
  });

  app.delete('/v1/groups/:id/members/:userId', async (req, reply) => {
    const { userId } = await auth.bearer(req.headers.authorization);
    const target = (req.params as { userId: string }).userId;
    if (!USER_ID.test(target)) throw badRequest('not a user id');
    await groups.removeMember(userId, groupId(req), target);
    return reply.status(204).send();
  });
}
