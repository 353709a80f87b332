// Who is asking: a session cookie (pages, htmx) or a bearer token (JSON API), resolved
// once per request, as `request.principal` (what it may do is asked in api/access.ts).
// CSRF is required on every state-changing request made with a cookie.
import crypto from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { permissionsOf, sessionUser, tokenUser, type Grants, type SessionUser } from '../../services/accounts.js';
import type { Permission } from '../../domain/permissions.js';
import { ServiceError } from '../../services/errors.js';
import { sha256 } from '../../services/passwords.js';
import { pickLocale, type Locale } from '../../views/i18n.js';
import { Authz, type Decisions } from '../authz/index.js';
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
/**
 * Forms that act on no session: POST /login starts a new one, so a stale tab's login form
 * works; an invite's form is proven by its unguessable token, even in a browser where an
 * admin is signed in.
 */
const SESSIONLESS_FORMS = new Set(['/login', '/invite/:token']);

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
  let grants: Grants | null = null;
  if (credential.bearer !== undefined) {
    const found = await tokenUser(deps.db, credential.bearer);
    if (found) user = { ...found, csrfToken: null, via: 'token', credentialKey: `token:${sha256(credential.bearer)}` };
  } else if (credential.cookie !== undefined) {
    // The session and its user's grants come in one query (a page's first question is both).
    const found = await sessionUser(deps.db, credential.cookie);
    if (found) {
      user = {
        id: found.id,
        login: found.login,
        locale: found.locale,
        csrfToken: found.csrfToken,
        via: 'session',
        credentialKey: `session:${found.sessionId}`,
      };
      grants = found.grants;
    }
  }
  if (!user) return null;
  const permissions = grants ?? (await permissionsOf(deps.db, user.id));
  return { ...user, ...permissions, decisions: await authz.decide(permissions) };
}

export const authPlugin = fp<{ deps: AppDeps }>(async (app, { deps }) => {
  const authz = await Authz.load();
  app.decorate('authz', authz);
  app.decorateRequest('principal', null);
  app.decorateRequest('locale', 'ru');
  // Read and set by the route toolkit (api/access.ts).
  app.decorateRequest('refusalWords', 'permission');
  app.decorateRequest('process', null as never);
  app.decorateRequest('template', null as never);
  app.addHook('onRequest', async (request) => {
    const credential = credentialOf(request);
    const principal = await resolvePrincipal(deps, authz, credential);
    if (!principal && credential.bearer !== undefined)
      throw new ServiceError('unauthenticated', {
        en: 'The bearer token is unknown, expired or revoked.',
        ru: 'Токен неизвестен, истёк или отозван.',
      });
    const queryLang = (request.query as Record<string, unknown> | undefined)?.lang;
    request.locale = pickLocale(queryLang ?? request.cookies[LOCALE_COOKIE] ?? principal?.locale, 'ru');
    request.principal = principal;
  });
  // After body parsing, so a form's _csrf field counts as well as the htmx header.
  app.addHook('preValidation', async (request) => {
    const user = request.principal;
    const route = request.routeOptions.url ?? '';
    if (user && user.via === 'session' && !SAFE_METHODS.has(request.method) && !SESSIONLESS_FORMS.has(route)) {
      const body = request.body as Record<string, unknown> | undefined;
      const sent = request.headers['x-csrf-token'] ?? body?._csrf;
      if (typeof sent !== 'string' || !user.csrfToken || !sameToken(sent, user.csrfToken)) {
        throw new ServiceError('forbidden', {
          en: 'The CSRF token is missing or wrong; reload the page and try again.',
          ru: 'Токен CSRF отсутствует или неверен; обновите страницу и повторите.',
        });
      }
    }
  });
});
