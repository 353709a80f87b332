// Single sign-on with OpenID Connect (authorization code flow with PKCE): /auth/oidc/login sends
// the browser to the provider with a sealed flow cookie; /auth/oidc/callback checks the answer
// against it, signs the user in (services/sso.ts) and audits every attempt as `login.sso`.
// Both answer 404 while TRAINYARD_OIDC_ISSUER is unset.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { recordAudit, type AuditOutcome } from '../../services/audit.js';
import { ServiceError } from '../../services/errors.js';
import { signInExternal, type SsoRefusal } from '../../services/sso.js';
import { translator, type MessageKey } from '../../views/i18n.js';
import { loginPage } from '../../views/pages/login.js';
import type { AppDeps } from '../deps.js';
import { startSession } from '../session-cookie.js';
import { FLOW_COOKIE, FLOW_TTL_MS, openFlow, sealFlow } from '../sso/flow-cookie.js';
import { createSsoClient, SsoError, type SsoClient, type SsoFailure } from '../sso/provider.js';
import { safeNext } from './pages.js';

const FLOW_PATH = '/auth/oidc';

/** The words a refused sign-in shows, per reason (views/i18n.ts, Login). */
const REFUSAL_WORDS: Record<SsoFailure | SsoRefusal | 'expired', MessageKey> = {
  unreachable: 'ssoUnreachable',
  expired: 'ssoExpired',
  state: 'ssoForgedState',
  nonce: 'ssoForgedNonce',
  code: 'ssoCodeRefused',
  provider: 'ssoProviderRefused',
  invalid: 'ssoInvalid',
  no_role: 'ssoNoRole',
  inactive: 'ssoInactive',
  unknown_role: 'ssoUnknownRole',
};

export async function ssoRoutes(parent: FastifyInstance, { deps }: { deps: AppDeps }) {
  const app = parent.withTypeProvider<TypeBoxTypeProvider>();
  const oidc = deps.config.oidc;
  const sso: SsoClient | null = oidc ? createSsoClient(oidc) : null;
  const ways = { sso: sso !== null, localLogin: deps.config.localLogin };

  function configured(): SsoClient {
    if (!sso)
      throw new ServiceError('not_found', {
        en: 'Single sign-on is not configured (TRAINYARD_OIDC_ISSUER).',
        ru: 'Единый вход не настроен (TRAINYARD_OIDC_ISSUER).',
      });
    return sso;
  }

  /** The login page with the reason in the reader's language; the details go to the audit log. */
  function refuse(request: FastifyRequest, reply: FastifyReply, status: number, reason: keyof typeof REFUSAL_WORDS) {
    const t = translator(request.locale);
    return reply
      .code(status)
      .header('cache-control', 'no-store')
      .type('text/html; charset=utf-8')
      .send(loginPage(request.locale, { ...ways, error: t(REFUSAL_WORDS[reason]) }).value);
  }

  async function audit(
    request: FastifyRequest,
    outcome: AuditOutcome,
    actor: { userId: number | null; login: string | null },
    detail: Record<string, unknown>,
  ) {
    try {
      await recordAudit(deps.db, {
        actor,
        action: 'login.sso',
        targetType: 'user',
        targetId: actor.userId,
        outcome,
        detail: { ip: request.ip, issuer: oidc?.issuer ?? null, ...detail },
      });
    } catch (error) {
      request.log.error({ err: error }, 'could not record an audit event');
    }
  }

  app.get(
    '/auth/oidc/login',
    { schema: { querystring: Type.Object({ next: Type.Optional(Type.String({ maxLength: 2000 })) }) } },
    async (request, reply) => {
      const client = configured();
      let started;
      try {
        started = await client.start();
      } catch (error) {
        if (!(error instanceof SsoError)) throw error;
        request.log.warn({ err: error }, 'single sign-on: discovery failed');
        return refuse(request, reply, 503, error.reason);
      }
      const flow = { ...started.checks, next: safeNext(request.query.next), expires: Date.now() + FLOW_TTL_MS };
      reply.setCookie(FLOW_COOKIE, sealFlow(deps.secret, flow), {
        path: FLOW_PATH,
        httpOnly: true,
        // Lax: the provider's redirect back is a top-level GET, which carries it.
        sameSite: 'lax',
        secure: request.protocol === 'https',
        maxAge: FLOW_TTL_MS / 1000,
      });
      return reply.header('cache-control', 'no-store').redirect(started.url, 303);
    },
  );

  app.get(
    '/auth/oidc/callback',
    {
      schema: {
        // The provider's answer: code and state, or error; other parameters (iss, session_state) pass.
        querystring: Type.Object(
          {
            code: Type.Optional(Type.String({ maxLength: 4000 })),
            state: Type.Optional(Type.String({ maxLength: 4000 })),
            error: Type.Optional(Type.String({ maxLength: 4000 })),
          },
          { additionalProperties: true },
        ),
      },
    },
    async (request, reply) => {
      const client = configured();
      // One use only: whatever happens next, the flow is spent.
      reply.clearCookie(FLOW_COOKIE, { path: FLOW_PATH });
      const flow = openFlow(deps.secret, request.cookies[FLOW_COOKIE]);
      const anonymous = { userId: null, login: null };
      if (!flow) {
        await audit(request, 'failed', anonymous, { reason: 'expired' });
        return refuse(request, reply, 400, 'expired');
      }
      let identity;
      try {
        identity = await client.finish(request.url.split('?')[1] ?? '', flow);
      } catch (error) {
        if (!(error instanceof SsoError)) throw error;
        await audit(request, 'failed', anonymous, { reason: error.reason, message: error.message });
        return refuse(request, reply, error.reason === 'unreachable' ? 503 : 400, error.reason);
      }
      const who = { subject: identity.subject, groups: identity.groups };
      const outcome = await signInExternal(deps.db, identity, oidc!.roleMap);
      if (!outcome.ok) {
        await audit(
          request,
          'denied',
          { userId: outcome.userId, login: outcome.login },
          {
            ...who,
            reason: outcome.reason,
            ...(outcome.detail ? { roles: outcome.detail } : {}),
          },
        );
        return refuse(request, reply, 403, outcome.reason);
      }
      await startSession(deps, request, reply, outcome.user.id);
      await audit(
        request,
        'ok',
        { userId: outcome.user.id, login: outcome.user.login },
        {
          ...who,
          roles: outcome.roles,
          created: outcome.created,
        },
      );
      return reply.header('cache-control', 'no-store').redirect(flow.next, 303);
    },
  );
}
