// Who is asking: a session cookie (pages, htmx) or a bearer token (JSON API), resolved
// once per request. CSRF is required on every state-changing request made with a cookie.
import crypto from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { permissionsOf, sessionUser, tokenUser, type SessionUser } from '../services/accounts.js';
import type { Permission } from '../domain/permissions.js';
import { ServiceError } from '../services/errors.js';
import { pickLocale, type Locale } from '../views/i18n.js';
import type { AppDeps } from './deps.js';

export const SESSION_COOKIE = 'ty_session';
export const LOCALE_COOKIE = 'ty_lang';

export interface Principal extends SessionUser {
  via: 'session' | 'token';
  csrfToken: string | null;
  global: Set<Permission>;
  byTemplate: Map<number, Set<Permission>>;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
    locale: Locale;
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}

export const authPlugin = fp<{ deps: AppDeps }>(async (app, { deps }) => {
  app.decorateRequest('principal', null);
  app.decorateRequest('locale', 'ru');
  app.addHook('onRequest', async (request) => {
    let user: (SessionUser & { csrfToken: string | null; via: 'session' | 'token' }) | null = null;
    const header = request.headers.authorization;
    if (header?.startsWith('Bearer ')) {
      const found = await tokenUser(deps.db, header.slice(7).trim());
      if (!found) throw new ServiceError('unauthenticated', 'The bearer token is unknown, expired or revoked.');
      user = { ...found, csrfToken: null, via: 'token' };
    } else {
      const cookie = request.cookies[SESSION_COOKIE];
      const found = cookie ? await sessionUser(deps.db, cookie) : null;
      if (found) user = { ...found, via: 'session' };
    }
    const queryLang = (request.query as Record<string, unknown> | undefined)?.lang;
    request.locale = pickLocale(queryLang ?? request.cookies[LOCALE_COOKIE] ?? user?.locale, 'ru');
    if (!user) return;
    const permissions = await permissionsOf(deps.db, user.id);
    request.principal = { ...user, ...permissions };
  });
  // After body parsing, so a form's _csrf field counts as well as the htmx header.
  app.addHook('preValidation', async (request) => {
    const user = request.principal;
    if (user && user.via === 'session' && !SAFE_METHODS.has(request.method)) {
      const body = request.body as Record<string, unknown> | undefined;
      const sent = request.headers['x-csrf-token'] ?? body?._csrf;
      if (typeof sent !== 'string' || !user.csrfToken || !sameToken(sent, user.csrfToken)) {
        throw new ServiceError('forbidden', 'The CSRF token is missing or wrong; reload the page and try again.');
      }
    }
  });
});

/** Passes when the caller holds the permission globally, or for the template when one is named. */
export function can(principal: Principal | null, permission: Permission, templateId?: number): boolean {
  if (!principal) return false;
  if (principal.global.has(permission)) return true;
  return templateId !== undefined && (principal.byTemplate.get(templateId)?.has(permission) ?? false);
}

/** Passes when the caller holds the permission anywhere (globally or for some template). */
export function canAnywhere(principal: Principal | null, permission: Permission): boolean {
  if (!principal) return false;
  if (principal.global.has(permission)) return true;
  for (const set of principal.byTemplate.values()) if (set.has(permission)) return true;
  return false;
}

export function requirePrincipal(request: FastifyRequest, reply: FastifyReply): Principal | null {
  if (request.principal) return request.principal;
  if (request.url.startsWith('/api/')) throw new ServiceError('unauthenticated', 'Send Authorization: Bearer <token>.');
  const next = encodeURIComponent(request.url);
  void reply.redirect(`/login?next=${next}`, 303);
  return null;
}
