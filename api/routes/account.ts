// The caller's own account: API tokens (create — shown once —, list, revoke).
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { ServiceError } from '../../services/errors.js';
import { createOwnToken, listTokens, revokeOwnToken } from '../../services/tokens.js';
import { tokensPage } from '../../views/pages/tokens.js';
import { signedIn } from '../access.js';
import type { AppDeps } from '../deps.js';
import { pageContext } from './pages.js';
import { IdParams } from './params.js';

const html = 'text/html; charset=utf-8';

/**
 * Logged in with a session: a token cannot mint or revoke tokens, so a leaked
 * short-lived token cannot turn itself into a lasting one.
 */
async function sessionOnly(request: FastifyRequest): Promise<void> {
  if (request.principal?.via !== 'session')
    throw new ServiceError('forbidden', {
      en: 'API tokens are managed from a logged-in browser session, not with a token.',
      ru: 'Токенами API управляют из браузера после входа, а не с токеном.',
    });
}

export async function accountRoutes(parent: FastifyInstance, { deps }: { deps: AppDeps }) {
  const app = parent.withTypeProvider<TypeBoxTypeProvider>();
  app.addHook('preHandler', signedIn);
  app.addHook('preHandler', sessionOnly);

  app.get('/account/tokens', async (request, reply) => {
    const principal = request.principal!;
    return reply.type(html).send(tokensPage(pageContext(request), await listTokens(deps.db, principal.id)).value);
  });

  app.post(
    '/account/tokens',
    {
      config: { audit: 'token.create' },
      schema: {
        body: Type.Object({
          name: Type.Optional(Type.String({ maxLength: 1000 })),
          expiresDays: Type.Optional(Type.String({ maxLength: 10 })),
          _csrf: Type.Optional(Type.String()),
        }),
      },
    },
    async (request, reply) => {
      const principal = request.principal!;
      const created = await createOwnToken(deps.db, principal.login, {
        name: request.body.name,
        expiresDays: request.body.expiresDays,
      });
      request.audit.targetId = created.id;
      request.audit.detail = { name: created.name, expiresAt: created.expiresAt?.toISOString() ?? null };
      // Answered with the page itself, never a redirect: the token must not travel in a URL.
      return reply
        .header('cache-control', 'no-store')
        .type(html)
        .send(
          tokensPage(pageContext(request), await listTokens(deps.db, principal.id), {
            token: created.token,
            name: created.name,
          }).value,
        );
    },
  );

  app.post(
    '/account/tokens/:id/revoke',
    {
      config: { audit: 'token.revoke' },
      schema: { params: IdParams },
    },
    async (request, reply) => {
      const principal = request.principal!;
      await revokeOwnToken(deps.db, principal.id, request.params.id);
      return reply.redirect('/account/tokens', 303);
    },
  );
}
