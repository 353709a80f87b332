// GET /metrics: Prometheus text format — processes by status and HTTP requests by
// route and status (telemetry/web-metrics.ts). Scrape it with a token of a user who may
// view every process.
import fp from 'fastify-plugin';
import { statusCounts } from '../../services/processes.js';
import { createWebMetrics } from '../../telemetry/web-metrics.js';
import { authorize } from '../access.js';
import type { AppDeps } from '../deps.js';

export const prometheusPlugin = fp<{ deps: AppDeps }>(async (app, { deps }) => {
  // One registry per app: every web process (and every app a test builds) counts its own.
  const metrics = createWebMetrics({ statusCounts: () => statusCounts(deps) });
  app.addHook('onResponse', async (request, reply) => {
    metrics.requestAnswered(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode);
  });

  app.get('/metrics', async (request, reply) => {
    authorize(request, 'processes.view');
    const text = await metrics.registry.metrics();
    return reply.type('text/plain; version=0.0.4; charset=utf-8').send(text);
  });
});
