// A web process's Prometheus metrics, in a registry of its own per app (never
// prom-client's global one, so apps built side by side in tests do not share counters).
import { Counter, Gauge, Registry } from 'prom-client';
import { STATUSES } from '../domain/status.js';

export interface WebMetrics {
  registry: Registry;
  /** One answered request: method, route pattern (never the raw URL: unbounded), status code. */
  requestAnswered(method: string, route: string, status: number): void;
}

export function createWebMetrics(deps: {
  /** Processes by status, read when scraped; null: no figures (a registry for checking names). */
  statusCounts: (() => Promise<Partial<Record<string, number>>>) | null;
}): WebMetrics {
  const registry = new Registry();
  const registers = [registry];
  new Gauge({
    name: 'trainyard_processes',
    help: 'Training processes by status.',
    labelNames: ['status'],
    registers,
    async collect() {
      if (!deps.statusCounts) return;
      const counts = await deps.statusCounts();
      for (const status of STATUSES) this.set({ status }, counts[status] ?? 0);
    },
  });
  const requests = new Counter({
    name: 'trainyard_http_requests_total',
    help: 'HTTP requests answered by this web process.',
    labelNames: ['method', 'route', 'status'],
    registers,
  });
  return {
    registry,
    requestAnswered: (method, route, status) => requests.inc({ method, route, status: String(status) }),
  };
}
