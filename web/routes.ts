// The web client (PROTOCOL.md: "web client at /"): static files from this folder, and MQTT.js's browser
// bundle from node_modules, served by Parley itself (no CDN).
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';

const here = path.dirname(fileURLToPath(import.meta.url));
const files: Record<string, { file: string; type: string }> = {
  'index.html': { file: path.join(here, 'index.html'), type: 'text/html; charset=utf-8' },
  'app.js': { file: path.join(here, 'app.js'), type: 'text/javascript; charset=utf-8' },
  'app.css': { file: path.join(here, 'app.css'), type: 'text/css; charset=utf-8' },
  'mqtt.min.js': { file: path.join(path.dirname(createRequire(import.meta.url).resolve('mqtt/package.json')), 'dist/mqtt.min.js'), type: 'text/javascript; charset=utf-8' },
};

export function webRoutes(app: FastifyInstance): void {
  const send = (name: string) => async (_req: unknown, reply: import('fastify').FastifyReply) => {
    const f = files[name];
    return reply
      .type(f.type)
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .header('content-security-policy', "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:")
      .send(fs.createReadStream(f.file));
  };
  app.get('/', send('index.html'));
  for (const name of Object.keys(files)) app.get(`/web/${name}`, send(name));
}
