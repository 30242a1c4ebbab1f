// HTTP API of blob/ (PROTOCOL.md, "HTTP API"): `POST /v1/attachments`, `GET /v1/attachments/{key}`, and,
// when the embedded store is in use, the store's own upload and download endpoints under `/v1/blobs`.
import fs from 'node:fs';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { badRequest } from '../common/errors.ts';
import type { BlobStore } from './blob-store.ts';
import { EmbeddedBlobStore } from './blob-store-embedded.ts';
import type { AttachmentService } from './service.ts';

export interface BlobRouteDeps {
  auth: { bearer(header: string | undefined): Promise<{ userId: string }> };
  attachments: AttachmentService;
  store: BlobStore;
  /** PARLEY_PUBLIC_URL: the origin clients reach this server at; without it, the request's own origin. */
  publicUrl?: string | null;
}

export function blobRoutes(app: FastifyInstance, deps: BlobRouteDeps): void {
  app.post('/v1/attachments', async (req, reply) => {
    const { userId } = await deps.auth.bearer(req.headers.authorization);
    const ticket = await deps.attachments.createUpload(userId, body(req));
    ticket.upload.url = absolute(ticket.upload.url, req, deps.publicUrl);
    return reply.status(201).header('cache-control', 'no-store').send(ticket);
  });

  app.get('/v1/attachments/*', async (req, reply) => {
    const { userId } = await deps.auth.bearer(req.headers.authorization);
    const url = await deps.attachments.download(userId, wildcard(req));
    return reply.header('cache-control', 'no-store').redirect(absolute(url, req, deps.publicUrl), 302);
  });

  if (deps.store instanceof EmbeddedBlobStore) embeddedStoreRoutes(app, deps.store);
}

/** What S3 would serve for the embedded store: signed uploads and downloads, no bearer token needed. */
export function embeddedStoreRoutes(app: FastifyInstance, store: EmbeddedBlobStore): void {
  void app.register(async (scope) => {
    // The body goes to the store as a stream: never buffered whole, never past the upload limit.
    scope.addContentTypeParser('multipart/form-data', (_req, payload, done) => done(null, payload));

    scope.post(store.basePath, async (req, reply) => {
      const length = req.headers['content-length'] === undefined ? null : Number(req.headers['content-length']);
      try {
        await store.receiveUpload(req.headers['content-type'], Number.isFinite(length) ? length : null, req.body as AsyncIterable<Buffer>);
      } catch (err) {
        // A refusal before the body was read: do not wait for the rest of it on this connection.
        if (!req.raw.complete) reply.header('connection', 'close');
        throw err;
      }
      return reply.status(204).send();
    });

    scope.get(`${store.basePath}/*`, async (req, reply) => {
      const q = req.query as Record<string, unknown>;
      const blob = await store.openDownload(wildcard(req), q.exp, q.sig);
      // Served from Parley's own origin: never rendered as a page, never sniffed into one.
      return reply
        .headers({
          'content-type': blob.mime,
          'content-length': String(blob.size),
          'content-disposition': 'attachment',
          'x-content-type-options': 'nosniff',
          'content-security-policy': "default-src 'none'; sandbox",
          'cache-control': 'private, max-age=300',
        })
        .send(fs.createReadStream(blob.file));
    });
  });
}

function wildcard(req: FastifyRequest): string {
  return (req.params as Record<string, string | undefined>)['*'] ?? '';
}

/** Store URLs of the embedded adapter are paths on this server. */
function absolute(url: string, req: FastifyRequest, publicUrl?: string | null): string {
  if (!url.startsWith('/')) return url;
  try {
    return new URL(url, publicUrl ?? `${req.protocol}://${req.host}`).toString();
  } catch {
    throw badRequest('invalid Host header');
  }
}

function body(req: FastifyRequest): Record<string, unknown> {
  return req.body && typeof req.body === 'object' && !Array.isArray(req.body) ? (req.body as Record<string, unknown>) : {};
}
