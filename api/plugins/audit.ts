// Records every state-changing request (pages, htmx fragments, JSON API) in the audit
// log once its response is sent: who, what, on what, and the outcome its status
// stands for. A route names its action with `config: { audit: 'process.start' }`
// (else the method and route pattern stand in); a handler may add the target or
// details through `request.audit`.
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { userIdOf } from '../../services/accounts.js';
import { outcomeOf, recordAudit, type AuditActor, type AuditOutcome } from '../../services/audit.js';
import type { AppDeps } from '../deps.js';

export interface AuditInfo {
  action?: string;
  targetType?: string;
  targetId?: string | number;
  detail?: Record<string, unknown>;
  /** For requests without a principal that still have an actor (a login). */
  actor?: AuditActor;
  outcome?: AuditOutcome;
  skip?: boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    audit: AuditInfo;
    auditError: string | null;
  }
  interface FastifyContextConfig {
    /** The audited action, e.g. `template.create`; false: not audited. */
    audit?: string | false;
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Routes of the login pages, named here so their handlers need not know about auditing. */
const NAMED: Record<string, string> = { 'POST /login': 'login', 'POST /logout': 'logout' };

function defaultAction(request: FastifyRequest): string {
  return `${request.method} ${request.routeOptions.url ?? request.url.split('?')[0]}`;
}

export const auditPlugin = fp<{ deps: AppDeps }>(async (app, { deps }) => {
  // Each request gets its own object in onRequest; a shared decorator object would leak between requests.
  app.decorateRequest('audit', null as unknown as AuditInfo);
  app.decorateRequest('auditError', null);
  app.addHook('onRequest', async (request) => {
    request.audit = {};
  });
  app.addHook('onError', async (request, _reply, error) => {
    request.auditError = error.message;
  });
  app.addHook('onResponse', async (request, reply) => {
    const configured = request.routeOptions.config?.audit;
    // Null when an earlier onRequest hook (authentication) failed before ours ran.
    const info = (request.audit ??= {});
    if (SAFE_METHODS.has(request.method) || configured === false || info.skip) return;
    // Requests that matched no route are noise, not actions.
    if (!request.routeOptions.url) return;
    const principal = request.principal;
    const action = info.action ?? configured ?? NAMED[defaultAction(request)] ?? defaultAction(request);
    if (action === 'login' && !info.actor) {
      // Nobody is logged in yet: the actor is whoever the form names, the outcome its answer.
      const login = (request.body as { login?: unknown } | undefined)?.login;
      const named = typeof login === 'string' ? login.slice(0, 200) : null;
      const userId = named && reply.statusCode === 303 ? await userIdOf(deps.db, named) : null;
      info.actor = { userId, login: named };
      info.outcome ??=
        reply.statusCode === 303 ? 'ok' : reply.statusCode === 401 ? 'failed' : outcomeOf(reply.statusCode);
    }
    const params = request.params as Record<string, unknown> | undefined;
    const targetId =
      info.targetId ?? (typeof params?.id === 'string' || typeof params?.id === 'number' ? params.id : undefined);
    try {
      await recordAudit(deps.db, {
        actor: info.actor ?? { userId: principal?.id ?? null, login: principal?.login ?? null },
        action,
        targetType: info.targetType ?? (action.includes('.') ? action.split('.')[0]! : null),
        targetId: targetId ?? null,
        outcome: info.outcome ?? outcomeOf(reply.statusCode),
        detail: {
          method: request.method,
          path: request.url.split('?')[0],
          status: reply.statusCode,
          via: principal?.via ?? null,
          ip: request.ip,
          ...(request.auditError && reply.statusCode >= 400 ? { message: request.auditError } : {}),
          ...info.detail,
        },
      });
    } catch (error) {
      // The response is already sent; a lost audit row must at least reach the log.
      request.log.error({ err: error }, 'could not record an audit event');
    }
  });
});
