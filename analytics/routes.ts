// The analytics HTTP routes: the series API (PROTOCOL.md) and the dashboard page with its script, style
// and the chart library, all served from here (uPlot from node_modules; no CDN).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { AuthService } from '../auth/service.ts';
import type { Archive } from '../consumers/archive.ts';
import { forbidden, unavailable } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import { parseSeriesQuery, participantViewer, readSeries } from './series.ts';

export interface AnalyticsRouteDeps {
  auth: Pick<AuthService, 'bearer'>;
  archive: Archive;
  metrics: readonly string[];
  /** Users who may read analytics and see every conversation id; empty: every signed-in user, ids masked. */
  readers: readonly string[];
  refreshMs: number;
  log: Logger;
}

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

interface Asset {
  type: string;
  body: string;
}

/** The dashboard's files, read once; null when this build lacks them (dist/ needs analytics/dashboard copied). */
function assets(refreshMs: number): Record<string, Asset> | null {
  try {
    return readAssets(refreshMs);
  } catch {
    return null;
  }
}

function readAssets(refreshMs: number): Record<string, Asset> {
  const own = (file: string) => readFileSync(path.join(here, 'dashboard', file), 'utf8');
  const vendor = (file: string) => readFileSync(require.resolve(`uplot/dist/${file}`), 'utf8');
  return {
    '/dashboard': { type: 'text/html; charset=utf-8', body: own('index.html').replace('{{refreshMs}}', String(refreshMs)) },
    '/dashboard/app.js': { type: 'text/javascript; charset=utf-8', body: own('app.js') },
    '/dashboard/app.css': { type: 'text/css; charset=utf-8', body: own('app.css') },
    '/dashboard/vendor/uPlot.iife.min.js': { type: 'text/javascript; charset=utf-8', body: vendor('uPlot.iife.min.js') },
    '/dashboard/vendor/uPlot.min.css': { type: 'text/css; charset=utf-8', body: vendor('uPlot.min.css') },
  };
}

export function analyticsRoutes(app: FastifyInstance, deps: AnalyticsRouteDeps): void {
  const known = new Set(deps.metrics);
  const readers = new Set(deps.readers);

  app.get('/v1/analytics/series', async (req) => {
    const { userId } = await deps.auth.bearer(req.headers.authorization);
    if (readers.size > 0 && !readers.has(userId)) throw forbidden('not an analytics reader (PARLEY_ANALYTICS_READERS)');
    const q = parseSeriesQuery(req.query as Record<string, unknown>, known);
    const canSee = readers.size > 0 ? () => true : participantViewer(userId);
    return { metric: q.metric, window: q.window, from: q.from, to: q.to, points: await readSeries(deps.archive, q, canSee) };
  });

  // The page carries no data: everything comes from the API with the viewer's token.
  const files = assets(deps.refreshMs);
  if (!files) {
    // The jobs and the API work without the page; say what is missing rather than stop the role.
    deps.log.error({ dir: path.join(here, 'dashboard') }, 'dashboard files are missing from this build; /dashboard answers 503');
    app.get('/dashboard', async () => {
      throw unavailable('the dashboard files are missing from this build (copy analytics/dashboard next to analytics/routes.js)');
    });
    return;
  }
  for (const [url, asset] of Object.entries(files)) {
    app.get(url, async (_req, reply) =>
      reply
        .type(asset.type)
        .header('cache-control', 'no-cache')
        .header('x-content-type-options', 'nosniff')
        .header('content-security-policy', "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
        .send(asset.body),
    );
  }
}
