// Who is asking: a session cookie (pages, htmx) or a bearer token (JSON API), resolved
// once per request. CSRF is required on every state-changing request made with a cookie.
import crypto from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { permissionsOf, sessionUser, tokenUser, type SessionUser } from '../../services/accounts.js';
import type { Permission } from '../../domain/permissions.js';
import { notFound, ServiceError } from '../../services/errors.js';
import { sha256 } from '../../services/passwords.js';
import { pickLocale, type Locale } from '../../views/i18n.js';
import { Authz, decided, decidedAnywhere, decidedTemplates, type Decisions } from '../authz/index.js';
import type { AppDeps } from '../deps.js';

export const SESSION_COOKIE = 'ty_session';
export const LOCALE_COOKIE = 'ty_lang';

export interface Principal extends SessionUser {
  via: 'session' | 'token';
  /** The session or token this request came with (its hash), e.g. to count its open streams. */
  credentialKey: string;
  csrfToken: string | null;
  global: Set<Permission>;
  byTemplate: Map<number, Set<Permission>>;
  /** What the Oso policy (authz/policy.polar) allows these grants; every check reads it. */
  decisions: Decisions;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
    locale: Locale;
  }
  interface FastifyInstance {
    authz: Authz;
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}

/** What a request proves who it is with: a bearer token or a session cookie. */
export interface Credential {
  bearer?: string;
  cookie?: string;
}

export function credentialOf(request: FastifyRequest): Credential {
  const header = request.headers.authorization;
  if (header?.startsWith('Bearer ')) return { bearer: header.slice(7).trim() };
  const cookie = request.cookies[SESSION_COOKIE];
  return cookie ? { cookie } : {};
}

/**
 * The principal a credential stands for now, or null (unknown, expired, revoked, user
 * deactivated). Called per request, and again by long-lived streams to learn whether
 * what let them open still holds.
 */
export async function resolvePrincipal(deps: AppDeps, authz: Authz, credential: Credential): Promise<Principal | null> {
  let user: (SessionUser & { csrfToken: string | null; via: 'session' | 'token'; credentialKey: string }) | null = null;
  if (credential.bearer !== undefined) {
    const found = await tokenUser(deps.db, credential.bearer);
    if (found) user = { ...found, csrfToken: null, via: 'token', credentialKey: `token:${sha256(credential.bearer)}` };
  } else if (credential.cookie !== undefined) {
    const found = await sessionUser(deps.db, credential.cookie);
    if (found) user = { id: found.id, login: found.login, locale: found.locale, csrfToken: found.csrfToken, via: 'session', credentialKey: `session:${found.sessionId}` };
  }
  if (!user) return null;
  const permissions = await permissionsOf(deps.db, user.id);
  return { ...user, ...permissions, decisions: await authz.decide(permissions) };
}

export const authPlugin = fp<{ deps: AppDeps }>(async (app, { deps }) => {
  const authz = await Authz.load();
  app.decorate('authz', authz);
  app.decorateRequest('principal', null);
  app.decorateRequest('locale', 'ru');
  app.addHook('onRequest', async (request) => {
    const credential = credentialOf(request);
    const principal = await resolvePrincipal(deps, authz, credential);
    if (!principal && credential.bearer !== undefined) throw new ServiceError('unauthenticated', 'The bearer token is unknown, expired or revoked.');
    const queryLang = (request.query as Record<string, unknown> | undefined)?.lang;
    request.locale = pickLocale(queryLang ?? request.cookies[LOCALE_COOKIE] ?? principal?.locale, 'ru');
    request.principal = principal;
  });
  // After body parsing, so a form's _csrf field counts as well as the htmx header.
  app.addHook('preValidation', async (request) => {
    const user = request.principal;
    // POST /login acts on no session (it starts a new one), so a stale tab's login form works.
    if (user && user.via === 'session' && !SAFE_METHODS.has(request.method) && request.routeOptions.url !== '/login') {
      const body = request.body as Record<string, unknown> | undefined;
      const sent = request.headers['x-csrf-token'] ?? body?._csrf;
      if (typeof sent !== 'string' || !user.csrfToken || !sameToken(sent, user.csrfToken)) {
        throw new ServiceError('forbidden', 'The CSRF token is missing or wrong; reload the page and try again.');
      }
    }
  });
});

/** Passes when the policy allows the permission globally, or for the template when one is named. */
export function can(principal: Principal | null, permission: Permission, templateId?: number): boolean {
  return principal !== null && decided(principal.decisions, permission, templateId);
}

/** Passes when the policy allows the permission anywhere (globally or for some template). */
export function canAnywhere(principal: Principal | null, permission: Permission): boolean {
  return principal !== null && decidedAnywhere(principal.decisions, permission);
}

/** The template ids whose templates (or processes) the caller may see, or `all`: for the SQL filter. */
export function visibleTemplates(principal: Principal | null, permission: Permission = 'processes.view'): number[] | 'all' {
  return principal === null ? [] : decidedTemplates(principal.decisions, permission);
}

/**
 * The one check pages and the JSON API make at the edge: 401 without a principal, 403
 * without the permission (globally, for the named template, or anywhere when `anywhere`).
 */
export function authorize(principal: Principal | null, permission: Permission, scope: { templateId?: number; anywhere?: boolean } = {}): Principal {
  if (!principal) throw new ServiceError('unauthenticated', 'Log in, or send Authorization: Bearer <token>.');
  const allowed = scope.anywhere ? canAnywhere(principal, permission) : can(principal, permission, scope.templateId);
  if (!allowed) throw new ServiceError('forbidden', `You do not have the ${permission} permission${scope.templateId !== undefined ? ` for template ${scope.templateId}` : ''}.`);
  return principal;
}

/**
 * A check on one thing of a template (a process, a template): what the caller may not
 * even view answers 404 like a missing id, so ids of hidden templates leak nothing.
 */
export function authorizeOn(principal: Principal | null, permission: Permission, templateId: number, what: { kind: string; id: number }, view: Permission = 'processes.view'): Principal {
  const allowed = authorize(principal, permission, { anywhere: true });
  if (!can(allowed, view, templateId)) throw notFound(what.kind, what.id);
  return authorize(allowed, permission, { templateId });
}

export function requirePrincipal(request: FastifyRequest, reply: FastifyReply): Principal | null {
  if (request.principal) return request.principal;
  if (request.url.startsWith('/api/')) throw new ServiceError('unauthenticated', 'Send Authorization: Bearer <token>.');
  const next = encodeURIComponent(request.url);
  void reply.redirect(`/login?next=${next}`, 303);
  return null;
}
