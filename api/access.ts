// Who may do what, asked one way by the pages and the JSON API alike. `can` answers (for
// what a page shows), `authorize` refuses (401 without a principal, 403 without the
// permission); both read the decisions of the Oso policy (authz/policy.polar). The
// pre-handlers run these checks before a handler does anything: `signedIn` once per
// encapsulated scope, `permitted` for global permissions, and `loadProcess` /
// `loadTemplate`, which look the thing up and decorate the request with it. What the
// caller may not even see answers 404 like a missing id, so hidden ids leak nothing.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Db } from '../db/client.js';
import type { Permission } from '../domain/permissions.js';
import { notFound, ServiceError, THINGS } from '../services/errors.js';
import { getProcess, type ProcessView } from '../services/processes.js';
import { getTemplate, type TemplateView } from '../services/templates.js';
import { translator } from '../views/i18n.js';
import { decided, decidedAnywhere, decidedTemplates } from './authz/index.js';
import type { Principal } from './plugins/auth.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** How a 403 reads: the permission named (JSON API, admin), or the operator pages' own words. */
    refusalWords: 'permission' | 'page';
    /** Set by `loadProcess`. */
    process: ProcessView;
    /** Set by `loadTemplate`. */
    template: TemplateView;
  }
}

/** Passes when the policy allows the permission globally, or for the template when one is named. */
export function can(principal: Principal | null, permission: Permission, templateId?: number): boolean {
  return principal !== null && decided(principal.decisions, permission, templateId);
}

/** Passes when the policy allows the permission anywhere (globally or for some template). */
export function canAnywhere(principal: Principal | null, permission: Permission): boolean {
  return principal !== null && decidedAnywhere(principal.decisions, permission);
}

/** The template ids whose templates (or processes) the caller may see, or `all`: for the SQL filter. */
export function visibleTemplates(
  principal: Principal | null,
  permission: Permission = 'processes.view',
): number[] | 'all' {
  return principal === null ? [] : decidedTemplates(principal.decisions, permission);
}

/**
 * The one check at the edge: 401 without a principal, 403 without the permission (globally, for the template, or
 * anywhere).
 */
export function authorize(
  request: FastifyRequest,
  permission: Permission,
  scope: { templateId?: number; anywhere?: boolean } = {},
): Principal {
  const principal = request.principal;
  if (!principal) throw new ServiceError('unauthenticated', LOG_IN);
  const allowed = scope.anywhere ? canAnywhere(principal, permission) : can(principal, permission, scope.templateId);
  if (!allowed) {
    const forTemplate = scope.templateId !== undefined;
    const message =
      request.refusalWords === 'page'
        ? { en: translator('en')('forbidden'), ru: translator('ru')('forbidden') }
        : {
            en: `You do not have the ${permission} permission${forTemplate ? ` for template ${scope.templateId}` : ''}.`,
            ru: `У вас нет права ${permission}${forTemplate ? ` на шаблон ${scope.templateId}` : ''}.`,
          };
    throw new ServiceError('forbidden', message);
  }
  return principal;
}

const LOG_IN = {
  en: 'Log in, or send Authorization: Bearer <token>.',
  ru: 'Войдите или пришлите Authorization: Bearer <token>.',
};

const isHtmx = (request: FastifyRequest) => request.headers['hx-request'] === 'true';

/**
 * A scope's "signed in" hook. The JSON API answers 401; an htmx request is sent to the
 * login page whole (401 with HX-Redirect); a page is redirected there, to come back after.
 */
export async function signedIn(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
  if (request.principal) return undefined;
  if (request.url.startsWith('/api/')) throw new ServiceError('unauthenticated', LOG_IN);
  if (isHtmx(request)) {
    const current = request.headers['hx-current-url'];
    let next = '/';
    if (typeof current === 'string') {
      try {
        next = new URL(current).pathname;
      } catch {
        next = '/';
      }
    }
    // Returning the reply tells Fastify it has been answered: the handler does not run.
    return reply
      .code(401)
      .header('HX-Redirect', `/login?next=${encodeURIComponent(next)}`)
      .send('');
  }
  return reply.redirect(`/login?next=${encodeURIComponent(request.url)}`, 303);
}

/** The operator pages' hook: their refusals are worded for the reader. */
export async function pageWords(request: FastifyRequest): Promise<void> {
  request.refusalWords = 'page';
}

/** A pre-handler: every global permission named (403 at the first one missing). */
export function permitted(...permissions: Permission[]) {
  return async (request: FastifyRequest): Promise<void> => {
    for (const permission of permissions) authorize(request, permission);
  };
}

/** A positive integer from a route parameter or query, else a 404 / 400 that says which. */
export function intParam(value: unknown, what: string, status: 'not_found' | 'invalid' = 'not_found'): number {
  const n =
    typeof value === 'string' && /^\d{1,9}$/.test(value) ? Number(value) : typeof value === 'number' ? value : NaN;
  if (!Number.isInteger(n) || n < 0)
    throw new ServiceError(
      status,
      { en: `${what} must be a whole number.`, ru: `${what}: нужно целое число.` },
      status === 'invalid' ? what : undefined,
    );
  return n;
}

/** How a scope hides what a caller may not see. */
export interface Visibility {
  /** Without this permission on the template, the thing is answered as missing (404). */
  hiddenUnless: Permission;
  /** Refuse (403) a caller without the permission on any template before looking the id up. */
  refuseFirst?: boolean;
  /** The route parameter holding the id (`id` when not named). */
  param?: string;
  /** Names the request for the audit log once the thing is found, before the permission is checked. */
  audit?: (request: FastifyRequest) => string;
}

/**
 * The JSON API hides a process the caller may not view, and refuses a caller without the
 * permission anywhere before looking; the pages hide a process whose template the
 * reader may not see, and refuse the rest with a 403 page.
 */
export const API_VISIBILITY: Visibility = { hiddenUnless: 'processes.view', refuseFirst: true };
export const PAGE_VISIBILITY: Visibility = { hiddenUnless: 'templates.view' };

function idOf(request: FastifyRequest, visibility: Visibility, kind: string): number {
  const raw = (request.params as Record<string, unknown>)[visibility.param ?? 'id'];
  // The JSON API's schemas make ids integers; page paths are text, and a non-number there is a missing page.
  return typeof raw === 'number' ? raw : intParam(raw, kind);
}

/** Checks on one thing of a template, in the order that decides between 404 and 403. */
function onTemplate(
  request: FastifyRequest,
  permissions: Permission[],
  visibility: Visibility,
  templateId: number,
  hidden: () => ServiceError,
): void {
  if (!can(request.principal, visibility.hiddenUnless, templateId)) throw hidden();
  if (visibility.audit) Object.assign(request.audit ?? {}, { action: visibility.audit(request) });
  for (const permission of permissions) authorize(request, permission, { templateId });
}

/** A pre-handler: the process of `:id`, which the caller may see and act on with `permission`, as `request.process`. */
export function loadProcess(db: Db, permission: Permission, visibility: Visibility) {
  return async (request: FastifyRequest): Promise<void> => {
    if (visibility.refuseFirst) authorize(request, permission, { anywhere: true });
    const view = await getProcess({ db }, idOf(request, visibility, 'process'));
    onTemplate(request, [...new Set<Permission>(['processes.view', permission])], visibility, view.templateId, () =>
      notFound(THINGS.process, view.id),
    );
    request.process = view;
  };
}

/**
 * A pre-handler: the template of `:id` (or the parameter `visibility.param` names), on
 * which the caller holds every permission named, in order, as `request.template`.
 */
export function loadTemplate(db: Db, permissions: Permission[], visibility: Visibility) {
  return async (request: FastifyRequest): Promise<void> => {
    if (visibility.refuseFirst) authorize(request, permissions[0]!, { anywhere: true });
    const id = idOf(request, visibility, 'template');
    // The JSON API hides before it looks (a hidden id and a missing one read alike); pages look first.
    if (visibility.refuseFirst && !can(request.principal, visibility.hiddenUnless, id))
      throw notFound(THINGS.template, id);
    const template = await getTemplate(db, id);
    onTemplate(request, permissions, visibility, template.id, () => notFound(THINGS.template, template.id));
    request.template = template;
  };
}
