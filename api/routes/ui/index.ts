// The operator pages of the Training and Target machines sections, registered as one
// plugin; the live status feed is created here, once per web process.
import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../../deps.js';
import { machineRoutes } from './machines.js';
import { monitoringRoutes } from './monitoring.js';
import { processRoutes } from './processes.js';
import { StatusFeed } from './status-feed.js';
import { templateRoutes } from './templates.js';

export { localePlugin } from './locale.js';

export async function uiRoutes(app: FastifyInstance, { deps }: { deps: AppDeps }) {
  const feed = new StatusFeed(deps.db, (message) => app.log.warn(message));
  await app.register(processRoutes, { deps, feed });
  await app.register(monitoringRoutes, { deps });
  await app.register(templateRoutes, { deps });
  await app.register(machineRoutes, { deps });
}
