// GET /metrics: Prometheus text format — processes by status and HTTP requests by
// route and status. Scrape it with a token of a user who may view every process.
import fp from 'fastify-plugin';
import { STATUSES } from '../../domain/status.js';
import { statusCounts } from '../../services/processes.js';
import { authorize } from '../access.js';
import type { AppDeps } from '../deps.js';

const label = (value: string) => value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export const prometheusPlugin = fp<{ deps: AppDeps }>(async (app, { deps }) => {
  // Keyed by method, route pattern (never the raw URL: unbounded) and status code.
  const requests = new Map<string, number>();
  app.addHook('onResponse', async (request, reply) => {
    const key = `${request.method}\u0000${request.routeOptions.url ?? 'unmatched'}\u0000${reply.statusCode}`;
    requests.set(key, (requests.get(key) ?? 0) + 1);
  });

  app.get('/metrics', async (request, reply) => {
    authorize(request, 'processes.view');
    const counts = await statusCounts(deps);
    const lines = ['# HELP trainyard_processes Training processes by status.', '# TYPE trainyard_processes gauge'];
    for (const status of STATUSES) lines.push(`trainyard_processes{status="${status}"} ${counts[status] ?? 0}`);
    lines.push(
      '# HELP trainyard_http_requests_total HTTP requests answered by this web process.',
      '# TYPE trainyard_http_requests_total counter',
    );
    for (const [key, n] of [...requests].sort(([a], [b]) => a.localeCompare(b))) {
      const [method, route, status] = key.split('\u0000') as [string, string, string];
      lines.push(
        `trainyard_http_requests_total{method="${label(method)}",route="${label(route)}",status="${status}"} ${n}`,
      );
    }
    return reply.type('text/plain; version=0.0.4; charset=utf-8').send(`${lines.join('\n')}\n`);
  });
});
