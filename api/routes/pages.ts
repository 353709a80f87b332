// Operator pages: login, logout and the Training section.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { authenticate, destroySession } from '../../services/accounts.js';
import { ServiceError } from '../../services/errors.js';
import { listTemplates } from '../../services/templates.js';
import { translator } from '../../views/i18n.js';
import type { PageContext } from '../../views/layout.js';
import { loginPage } from '../../views/pages/login.js';
import { messagePage } from '../../views/pages/message.js';
import { templatesPage } from '../../views/pages/templates.js';
import { can, canAnywhere, signedIn, visibleTemplates } from '../access.js';
import { SESSION_COOKIE } from '../plugins/auth.js';
import type { AppDeps } from '../deps.js';
import { LoginLimiter } from '../login-limiter.js';
import { startSession } from '../session-cookie.js';

export function pageContext(request: FastifyRequest): PageContext {
  const principal = request.principal;
  return {
    locale: request.locale,
    user: principal ? { login: principal.login } : null,
    csrfToken: principal?.csrfToken ?? null,
    canSeeMachines: canAnywhere(principal, 'machines.view'),
    canAdminister: canAnywhere(principal, 'users.manage'),
  };
}

// Any origin will do: only whether a path stays on it matters.
const OWN_ORIGIN = 'http://trainyard.invalid';
// Browsers drop tabs and newlines from a URL and read a backslash as a slash, so
// "/\t/evil" or "/\\evil" would become "//evil", another site.
const UNSAFE = /[\u0000-\u001f\u007f\\]/;

/**
 * Only same-origin paths: a `next` parameter must never send the user elsewhere. Anything
 * with control characters or backslashes (also once percent-decoded), or that resolves
 * to another origin, goes to `/`.
 */
export function safeNext(next: unknown): string {
  if (typeof next !== 'string' || !next.startsWith('/') || UNSAFE.test(next)) return '/';
  let decoded: string;
  try {
    decoded = decodeURIComponent(next);
  } catch {
    return '/';
  }
  if (UNSAFE.test(decoded)) return '/';
  let url: URL;
  try {
    url = new URL(next, OWN_ORIGIN);
  } catch {
    return '/';
  }
  if (url.origin !== OWN_ORIGIN || next.startsWith('//')) return '/';
  return `${url.pathname}${url.search}${url.hash}`;
}

export async function pageRoutes(parent: FastifyInstance, { deps }: { deps: AppDeps }) {
  const app = parent.withTypeProvider<TypeBoxTypeProvider>();
  const limiter = new LoginLimiter();
  const ways = { sso: deps.config.oidc !== null, localLogin: deps.config.localLogin };

  app.get('/', async (request, reply) => reply.redirect(request.principal ? '/training/templates' : '/login', 303));

  app.get(
    '/login',
    {
      schema: {
        querystring: Type.Object({
          next: Type.Optional(Type.String({ maxLength: 2000 })),
          lang: Type.Optional(Type.String({ maxLength: 5 })),
        }),
      },
    },
    async (request, reply) => {
      if (request.principal) return reply.redirect(safeNext(request.query.next), 303);
      return reply
        .type('text/html; charset=utf-8')
        .send(loginPage(request.locale, { ...ways, next: safeNext(request.query.next) }).value);
    },
  );

  app.post(
    '/login',
    {
      schema: {
        body: Type.Object({
          login: Type.String({ maxLength: 200 }),
          password: Type.String({ maxLength: 1024 }),
          next: Type.Optional(Type.String({ maxLength: 2000 })),
          _csrf: Type.Optional(Type.String()),
        }),
      },
    },
    async (request, reply) => {
      const t = translator(request.locale);
      const { login, password } = request.body;
      const next = safeNext(request.body.next);
      const page = (error: string, code: number) =>
        reply
          .code(code)
          .type('text/html; charset=utf-8')
          .send(loginPage(request.locale, { ...ways, error, login, next }).value);
      // Single sign-on only: no password is checked, whoever holds it (API tokens still work).
      if (!deps.config.localLogin) return page(t('localLoginOff'), 403);
      if (limiter.blocked(request.ip, login)) return page(t('tooManyAttempts'), 429);
      let user;
      try {
        user = await authenticate(deps.db, login, password);
      } catch (error) {
        // The password hashing gate is full: a flood of logins, told to come back.
        if (!(error instanceof ServiceError && error.code === 'unavailable')) throw error;
        reply.header('retry-after', '5');
        return page(t('loginBusy'), 503);
      }
      if (!user) {
        limiter.fail(request.ip, login);
        return page(t('loginFailed'), 401);
      }
      limiter.succeed(request.ip, login);
      await startSession(deps, request, reply, user.id);
      return reply.redirect(next, 303);
    },
  );

  app.post('/logout', async (request, reply) => {
    const cookie = request.cookies[SESSION_COOKIE];
    if (cookie) await destroySession(deps.db, cookie);
    reply.clearCookie(SESSION_COOKIE, { path: '/' });
    return reply.redirect('/login', 303);
  });

  app.get('/training', async (_request, reply) => reply.redirect('/training/templates', 303));
  app.get('/admin', async (_request, reply) => reply.redirect('/admin/roles', 303));

  app.get('/training/templates', { preHandler: signedIn }, async (request, reply) => {
    const principal = request.principal!;
    const t = translator(request.locale);
    if (!canAnywhere(principal, 'templates.view')) {
      return reply
        .code(403)
        .type('text/html; charset=utf-8')
        .send(messagePage(pageContext(request), t('trainingTemplates'), t('forbidden')).value);
    }
    // Filtered in the query: only the templates the policy lets this user view.
    const { items: visible } = await listTemplates(deps.db, {
      visibleTemplates: visibleTemplates(principal, 'templates.view'),
      orderBy: 'name',
      limit: 500,
    });
    return reply
      .type('text/html; charset=utf-8')
      .send(templatesPage(pageContext(request), visible, { canManage: can(principal, 'templates.manage') }).value);
  });
}
