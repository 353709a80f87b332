// The JSON API v1 (docs/design.md), mounted at /api/v1. Bearer tokens authenticate
// (api/plugins/auth.ts); every route but the OpenAPI document is for a signed-in caller,
// and authorizes at the edge (api/access.ts) before touching anything.
import type { FastifyInstance } from 'fastify';
import { signedIn } from '../../access.js';
import type { AppDeps } from '../../deps.js';
import { jsonValidator } from '../../validation.js';
import { machineRoutes } from './machines.js';
import { notificationRoutes } from './notifications.js';
import { collectRoutes, openApiRoutes } from './openapi.js';
import { processRoutes } from './processes.js';
import { sweepRoutes } from './sweeps.js';
import { templateRoutes } from './templates.js';
import { userRoutes } from './users.js';

declare module 'fastify' {
  interface FastifySchema {
    /** OpenAPI operation fields; ajv ignores them. */
    summary?: string;
    description?: string;
    tags?: string[];
    /** Media types of a success that is not JSON (e.g. a CSV export). */
    produces?: string[];
  }
  interface FastifyContextConfig {
    /** The permission a route needs, for the OpenAPI document (the check is in its pre-handler or handler). */
    permission?: string;
  }
}

export async function v1Routes(app: FastifyInstance, { deps }: { deps: AppDeps }) {
  const routes = collectRoutes(app);
  // Bodies are JSON and validated as sent; paths and queries are text (api/validation.ts).
  app.setValidatorCompiler(jsonValidator);
  // Many clients send Content-Type: application/json on every request; an action or a
  // delete without a body is still a request without a body, not a 400.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '') return done(null, undefined);
    return parseJson(request, body as string, done);
  });
  await app.register(async (resources) => {
    resources.addHook('preHandler', signedIn);
    await resources.register(templateRoutes, { deps });
    await resources.register(machineRoutes, { deps });
    await resources.register(processRoutes, { deps });
    await resources.register(sweepRoutes, { deps });
    await resources.register(userRoutes, { deps });
    await resources.register(notificationRoutes, { deps });
  });
  await app.register(openApiRoutes, { routes });
}
