// What the operator pages share: whether htmx is asking, how HTML is sent, and what a
// process row may show the reader. The checks themselves are in api/access.ts.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Html } from '../../../views/html.js';
import type { ProcessPermissions, RowContext } from '../../../views/fragments/process.js';
import { can } from '../../access.js';
import type { AppDeps } from '../../deps.js';

/** Names what a page request did for the audit log (when the audit hook is in the app). */
export function auditAs(
  request: FastifyRequest,
  info: { action?: string; targetType?: string; targetId?: string | number; detail?: Record<string, unknown> },
): void {
  const audit = (request as FastifyRequest & { audit?: Record<string, unknown> | null }).audit;
  if (audit) Object.assign(audit, info);
}

export const isHtmx = (request: FastifyRequest) => request.headers['hx-request'] === 'true';

export function sendHtml(reply: FastifyReply, body: Html, status = 200): FastifyReply {
  return reply.code(status).type('text/html; charset=utf-8').header('cache-control', 'no-store').send(body.value);
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
