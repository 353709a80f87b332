// The operator pages of the Training and Target machines sections, registered as one
// scope: every page is for a signed-in reader, and refuses in the reader's words.
import type { FastifyInstance } from 'fastify';
import { pageWords, signedIn } from '../../access.js';
import type { AppDeps } from '../../deps.js';
import { machineRoutes } from './machines.js';
import { monitoringRoutes } from './monitoring.js';
import { processRoutes } from './processes.js';
import { sweepRoutes } from './sweeps.js';
import { templateRoutes } from './templates.js';

export async function uiRoutes(app: FastifyInstance, { deps }: { deps: AppDeps }) {
  app.addHook('onRequest', pageWords);
  app.addHook('preHandler', signedIn);
  await app.register(processRoutes, { deps });
  await app.register(monitoringRoutes, { deps });
  await app.register(sweepRoutes, { deps });
  await app.register(templateRoutes, { deps });
  await app.register(machineRoutes, { deps });
}
