// The JSON API v1 (DESIGN §6), mounted at /api/v1. Bearer tokens authenticate (api/auth.ts);
// each route authorizes at the edge through the Oso policy before touching anything.
import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../../deps.js';
import { machineRoutes } from './machines.js';
import { collectRoutes, openApiRoutes } from './openapi.js';
import { processRoutes } from './processes.js';
import { templateRoutes } from './templates.js';

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * The JSON body as the client sent it. The app's ajv coerces types (`"5"` → 5,
     * 123 → "123") for querystrings' sake, and it does so to bodies too; the services
     * validate this untouched copy, so a wrong type is a 400, not a silent conversion.
     */
    pristineBody: unknown;
  }
  interface FastifySchema {
    /** OpenAPI operation fields; ajv ignores them. */
    summary?: string;
    description?: string;
    tags?: string[];
    /** Media types of a success that is not JSON (e.g. a CSV export). */
    produces?: string[];
  }
  interface FastifyContextConfig {
    /** The permission a route needs, for the OpenAPI document (the check is in the handler). */
    permission?: string;
  }
}

export async function v1Routes(app: FastifyInstance, { deps }: { deps: AppDeps }) {
  const routes = collectRoutes(app);
  // Many clients send Content-Type: application/json on every request; an action or a
  // delete without a body is still a request without a body, not a 400.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '') return done(null, undefined);
    return parseJson(request, body as string, done);
  });
  app.decorateRequest('pristineBody', null);
  app.addHook('preValidation', async (request) => {
    request.pristineBody = request.body === undefined || request.body === null ? request.body : structuredClone(request.body);
  });
  await app.register(templateRoutes, { deps });
  await app.register(machineRoutes, { deps });
  await app.register(processRoutes, { deps });
  await app.register(openApiRoutes, { routes });
}
