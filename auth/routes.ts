// HTTP API of auth/ (PROTOCOL.md, "HTTP API"): register, login, logout, me.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AuthService } from './service.ts';

export function authRoutes(app: FastifyInstance, auth: AuthService): void {
  app.post('/v1/auth/register', async (req, reply) => {
    const result = await auth.register(body(req));
    return reply.status(201).send(result);
  });

  app.post('/v1/auth/login', async (req) => auth.login(body(req), req.ip));

  app.post('/v1/auth/logout', async (req, reply) => {
    const { tokenHash } = await auth.bearer(req.headers.authorization);
    await auth.logout(tokenHash);
    return reply.status(204).send();
  });

  app.get('/v1/me', async (req) => {
    const { userId } = await auth.bearer(req.headers.authorization);
    return auth.me(userId);
  });
}

function body(req: FastifyRequest): Record<string, unknown> {
  return req.body && typeof req.body === 'object' && !Array.isArray(req.body) ? (req.body as Record<string, unknown>) : {};
}
