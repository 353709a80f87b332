// The operator pages of the Training and Target machines sections, registered as one
// plugin; the live status feed is created here, once per web process, and exposed as
// `app.statusFeed` (open streams and queries made, for tests and the curious).
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { AppDeps } from '../../deps.js';
import { machineRoutes } from './machines.js';
import { monitoringRoutes } from './monitoring.js';
import { processRoutes } from './processes.js';
import { StatusFeed, type StreamLimits } from '../../plugins/status-feed.js';
import { templateRoutes } from './templates.js';

export { localePlugin } from '../../plugins/locale.js';

declare module 'fastify' {
  interface FastifyInstance {
    statusFeed: StatusFeed;
  }
}

export const uiRoutes = fp<{ deps: AppDeps; streams?: Partial<StreamLimits> }>(async (app: FastifyInstance, { deps, streams }) => {
  const feed = new StatusFeed(deps.db, (message) => app.log.warn(message), streams ?? {});
  app.decorate('statusFeed', feed);
  await app.register(processRoutes, { deps, feed });
  await app.register(monitoringRoutes, { deps });
  await app.register(templateRoutes, { deps });
  await app.register(machineRoutes, { deps });
});
