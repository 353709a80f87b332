// What the operator pages share: who is asking, whether htmx is, and the checks that
// every template- or process-scoped page makes before touching anything else.
import { eq } from 'drizzle-orm';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Db } from '../../../db/client.js';
import { templates } from '../../../db/schema.js';
import type { Permission } from '../../../domain/permissions.js';
import { ServiceError } from '../../../services/errors.js';
import type { Html } from '../../../views/html.js';
import { translator } from '../../../views/i18n.js';
import type { ProcessPermissions, RowContext } from '../../../views/fragments/process.js';
import { can, requirePrincipal, type Principal } from '../../plugins/auth.js';
import type { AppDeps } from '../../deps.js';

/** Names what a page request did for the audit log (when the audit hook is in the app). */
export function auditAs(request: FastifyRequest, info: { action?: string; targetType?: string; targetId?: string | number; detail?: Record<string, unknown> }): void {
  const audit = (request as FastifyRequest & { audit?: Record<string, unknown> | null }).audit;
  if (audit) Object.assign(audit, info);
}

export const isHtmx = (request: FastifyRequest) => request.headers['hx-request'] === 'true';

export function sendHtml(reply: FastifyReply, body: Html, status = 200): FastifyReply {
  return reply.code(status).type('text/html; charset=utf-8').header('cache-control', 'no-store').send(body.value);
}

/** The signed-in user; an htmx request without a session is sent to the login page whole. */
export function requireUser(request: FastifyRequest, reply: FastifyReply): Principal | null {
  if (!request.principal && isHtmx(request)) {
    const current = request.headers['hx-current-url'];
    let next = '/';
    if (typeof current === 'string') {
      try {
        next = new URL(current).pathname;
      } catch {
        next = '/';
      }
    }
    void reply.code(401).header('HX-Redirect', `/login?next=${encodeURIComponent(next)}`).send('');
    return null;
  }
  return requirePrincipal(request, reply);
}

/** Throws 403 with the page's own words unless the user holds every permission named. */
export function demand(request: FastifyRequest, permissions: Permission[], templateId?: number): void {
  for (const permission of permissions) {
    if (!can(request.principal, permission, templateId)) {
      throw new ServiceError('forbidden', translator(request.locale)('forbidden'));
    }
  }
}

/**
 * The check on a template's pages and its processes: a template the user may not even
 * view answers 404 like a missing one (its id leaks nothing); then the permissions named.
 */
export function demandOnTemplate(request: FastifyRequest, templateId: number, what: { kind: string; id: number }, permissions: Permission[]): void {
  if (!can(request.principal, 'templates.view', templateId)) throw new ServiceError('not_found', `${what.kind} ${what.id} does not exist.`);
  demand(request, permissions, templateId);
}

export function allowed(request: FastifyRequest, permission: Permission, templateId?: number): boolean {
  return can(request.principal, permission, templateId);
}

export async function loadTemplate(db: Db, id: number) {
  const [row] = await db.select().from(templates).where(eq(templates.id, id));
  if (!row) throw new ServiceError('not_found', `Template ${id} does not exist.`);
  return row;
}

export function processPermissions(request: FastifyRequest, templateId: number): ProcessPermissions {
  return {
    manage: can(request.principal, 'processes.manage', templateId),
    delete: can(request.principal, 'processes.delete', templateId),
    view: can(request.principal, 'processes.view', templateId),
  };
}

export function rowContext(request: FastifyRequest, deps: AppDeps, templateId: number): RowContext {
  return {
    locale: request.locale,
    permissions: processPermissions(request, templateId),
    temporalUi: deps.temporalUiUrl ? { url: deps.temporalUiUrl, namespace: deps.config.temporal.namespace } : null,
    showMachineAddress: can(request.principal, 'machines.view'),
  };
}


/** A positive integer from a route parameter or query, else a 404 / 400 that says which. */
export function intParam(value: unknown, what: string, status: 'not_found' | 'invalid' = 'not_found'): number {
  const n = typeof value === 'string' && /^\d{1,9}$/.test(value) ? Number(value) : typeof value === 'number' ? value : NaN;
  if (!Number.isInteger(n) || n < 0) throw new ServiceError(status, `${what} must be a whole number.`, status === 'invalid' ? what : undefined);
  return n;
}
