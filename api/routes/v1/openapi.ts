// GET /api/v1/openapi.json: an OpenAPI 3.1 document generated from the schemas the
// routes themselves validate and serialise with, so the two cannot drift apart.
import type { FastifyInstance, RouteOptions } from 'fastify';
import { components, NON_FINITE_NOTE, WEBHOOK_SIGNATURE, WebhookEvent, type JsonSchema } from './schemas.js';

export interface DocumentedRoute {
  method: string;
  url: string;
  schema: Record<string, unknown>;
  permission: string | null;
}

/** Collects the routes of a scope as they are added: call before registering them. */
export function collectRoutes(app: FastifyInstance): DocumentedRoute[] {
  const routes: DocumentedRoute[] = [];
  app.addHook('onRoute', (route: RouteOptions) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      if (method === 'HEAD' || !route.schema) continue;
      routes.push({
        method,
        url: route.url,
        schema: route.schema as Record<string, unknown>,
        permission: route.config?.permission ?? null,
      });
    }
  });
  return routes;
}

/** JSON Schema (draft-07, as ajv runs it) → OpenAPI 3.1 (2020-12): components by $ref, tuples as prefixItems. */
function convert(schema: unknown, top = false): unknown {
  if (Array.isArray(schema)) return schema.map((item) => convert(item));
  if (!schema || typeof schema !== 'object') return schema;
  const name = components.get(schema);
  if (name && !top) return { $ref: `#/components/schemas/${name}` };
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'items' && Array.isArray(value)) {
      out.prefixItems = convert(value);
      continue;
    }
    if (key === 'additionalItems') {
      if (value === false) out.items = false;
      continue;
    }
    out[key] =
      key === 'properties' || key === 'patternProperties'
        ? Object.fromEntries(Object.entries(value as object).map(([k, v]) => [k, convert(v)]))
        : convert(value);
  }
  return out;
}

const STATUS_TEXT: Record<string, string> = {
  '200': 'OK',
  '201': 'Created',
  '202': 'Accepted',
  '204': 'No content',
  '400': 'Invalid input; error.field names the failing field',
  '401': 'No bearer token, or an unknown, expired or revoked one',
  '403': 'The token’s user lacks the permission',
  '404': 'No such id (or one the caller may not view)',
  '409': 'Refused in the current state; error.message says why',
  '503': 'A dependency (Temporal, a worker) is unavailable',
};

export function openApiDocument(routes: DocumentedRoute[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const path = route.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const { params, querystring, body, response, summary, description, tags, produces } = route.schema as Record<
      string,
      JsonSchema | undefined
    > & { tags?: string[]; produces?: string[] };
    const parameters: unknown[] = [];
    for (const [where, part] of [
      ['path', params],
      ['query', querystring],
    ] as const) {
      const properties = (part?.properties ?? {}) as Record<string, JsonSchema>;
      const required = new Set((part?.required as string[] | undefined) ?? []);
      for (const [name, schema] of Object.entries(properties)) {
        const { description: paramDescription, ...rest } = schema;
        parameters.push({
          name,
          in: where,
          required: where === 'path' || required.has(name),
          schema: convert(rest),
          ...(paramDescription ? { description: paramDescription } : {}),
        });
      }
    }
    const responses: Record<string, unknown> = {};
    for (const [code, schema] of Object.entries(response ?? {})) {
      const empty = (schema as JsonSchema).type === 'null';
      // `produces` names the media types of a success that is not JSON (e.g. an export); errors stay JSON.
      const media = produces && code.startsWith('2') ? produces : ['application/json'];
      responses[code] = {
        description: STATUS_TEXT[code] ?? code,
        ...(empty ? {} : { content: Object.fromEntries(media.map((type) => [type, { schema: convert(schema) }])) }),
      };
    }
    const isPublic = route.permission === null;
    (paths[path] ??= {})[route.method.toLowerCase()] = {
      ...(summary ? { summary } : {}),
      ...(description ? { description } : {}),
      ...(tags ? { tags } : {}),
      operationId: `${route.method.toLowerCase()}${path
        .replace(/\/api\/v1/, '')
        .replace(/[{}]/g, '')
        .replace(/[/-](\w)/g, (_m, c: string) => c.toUpperCase())}`,
      ...(parameters.length ? { parameters } : {}),
      ...(body ? { requestBody: { required: true, content: { 'application/json': { schema: convert(body) } } } } : {}),
      responses,
      ...(isPublic ? { security: [] } : { 'x-permission': route.permission }),
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Trainyard JSON API',
      version: '1',
      description: [
        'Automation for Trainyard: templates (with their restart policy), target machines, training processes, ' +
          'sweeps, notification channels and subscriptions, users.',
        'Authenticate with `Authorization: Bearer <token>`; a token acts with its user’s permissions ' +
          '(`x-permission` on each operation names the one it needs).',
        'Errors are `{"error":{"code","message","field?"}}`. Lists are `{items, nextCursor}`; pass nextCursor as ' +
          '`cursor` for the next page.',
        `Metrics: ${NON_FINITE_NOTE}`,
      ].join('\n\n'),
    },
    servers: [{ url: '/' }],
    security: [{ bearer: [] }],
    paths,
    // What Trainyard sends: the POST a webhook notification channel's URL receives.
    webhooks: {
      notification: {
        post: {
          summary: 'An event to a webhook channel',
          description:
            'Sent for each event a subscription of the channel asks for, retried with backoff until a 2xx answer ' +
            '(every attempt is in GET /api/v1/notification-channels/{id}/deliveries).',
          operationId: 'notification',
          parameters: [WEBHOOK_SIGNATURE],
          requestBody: { required: true, content: { 'application/json': { schema: convert(WebhookEvent) } } },
          responses: { '200': { description: 'Any 2xx: delivered. Anything else, or no answer: retried.' } },
          security: [],
        },
      },
    },
    components: {
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'An API token from the Tokens page or `npm run trainyard -- token create <login>`.',
        },
      },
      schemas: Object.fromEntries([...components].map(([schema, name]) => [name, convert(schema, true)])),
    },
  };
}

export async function openApiRoutes(app: FastifyInstance, { routes }: { routes: DocumentedRoute[] }) {
  let document: Record<string, unknown> | null = null;
  app.get('/openapi.json', { config: { audit: false } }, async () => (document ??= openApiDocument(routes)));
}
