// The HTTP server every role shares: JSON errors `{"error":{"code","message"}}` with the protocol's status
// codes, never a stack trace.
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { ParleyError } from './errors.ts';
import type { Logger } from './log.ts';

export function createHttp(log: Logger): FastifyInstance {
  const app = Fastify({ loggerInstance: log.child({ part: 'http' }, { level: 'warn' }) as FastifyBaseLogger, bodyLimit: 1024 * 1024, trustProxy: false });
  app.setErrorHandler((err: Error, req, reply) => {
    if (err instanceof ParleyError) return reply.status(err.status).send({ error: { code: err.code, message: err.message } });
    const status = (err as { statusCode?: number }).statusCode;
    if (status && status >= 400 && status < 500) {
      const code = status === 413 ? 'too_large' : 'bad_request';
      return reply.status(status).send({ error: { code, message: err.message } });
    }
    req.log.error({ err }, 'request failed');
    return reply.status(500).send({ error: { code: 'internal', message: 'internal error' } });
  });
  app.setNotFoundHandler((_req, reply) => reply.status(404).send({ error: { code: 'not_found', message: 'no such route' } }));
  return app;
}
