// /invite/<token>: the page an invited user opens, no login needed. They choose a password,
// the invite is used up, and they are signed in as by POST /login. The token is the only
// secret in the URL: it never reaches the log (api/app.ts), the audit log or a Referer.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { Config } from '../../lib/config.js';
import { ServiceError } from '../../services/errors.js';
import {
  acceptInvite,
  INVITE_REFUSALS,
  InviteRefused,
  invitePath,
  inviteState,
  type InviteState,
} from '../../services/invites.js';
import { translator } from '../../views/i18n.js';
import { invitePage, inviteRefusedPage } from '../../views/pages/invite.js';
import type { AppDeps } from '../deps.js';
import { startSession } from '../session-cookie.js';

const html = 'text/html; charset=utf-8';

/** How an invite's path reads in logs and the audit log. */
export const REDACTED_INVITE_PATH = '/invite/…';

/** A URL as it may be logged: an invite's token replaced. */
export function redactUrl(url: string): string {
  return url.replace(/^\/invite\/[^?#]*/, REDACTED_INVITE_PATH);
}

/** The link an admin hands over: TRAINYARD_PUBLIC_URL, else the address this request came to. */
export function inviteUrl(config: Pick<Config, 'publicUrl'>, request: FastifyRequest, token: string): string {
  return `${config.publicUrl ?? `${request.protocol}://${request.host}`}${invitePath(token)}`;
}

const Params = Type.Object({ token: Type.String({ minLength: 1, maxLength: 200 }) });
const Query = Type.Object({ lang: Type.Optional(Type.String({ maxLength: 5 })) });

type Refusal = Exclude<InviteState['state'], 'valid'>;
const REFUSAL_STATUS: Record<Refusal, number> = { unknown: 404, expired: 410, used: 410, inactive: 403 };

export async function inviteRoutes(parent: FastifyInstance, { deps }: { deps: AppDeps }) {
  const app = parent.withTypeProvider<TypeBoxTypeProvider>();

  function refused(request: FastifyRequest, reply: FastifyReply, state: Refusal) {
    request.audit.outcome = 'refused';
    request.audit.detail = { ...request.audit.detail, refused: state };
    const message = INVITE_REFUSALS[state][request.locale];
    return reply.code(REFUSAL_STATUS[state]).type(html).send(inviteRefusedPage(request.locale, message).value);
  }

  const localLoginOff = (request: FastifyRequest, reply: FastifyReply) =>
    reply
      .code(403)
      .type(html)
      .send(inviteRefusedPage(request.locale, translator(request.locale)('localLoginOff')).value);

  // Before validation, so even a refused request is logged and audited without its token.
  app.addHook('onRequest', async (request, reply) => {
    request.audit.detail = { ...request.audit.detail, path: REDACTED_INVITE_PATH };
    reply.header('referrer-policy', 'no-referrer').header('cache-control', 'no-store');
  });

  app.get('/invite/:token', { schema: { params: Params, querystring: Query } }, async (request, reply) => {
    if (!deps.config.localLogin) return localLoginOff(request, reply);
    const found = await inviteState(deps.db, request.params.token);
    if (found.state !== 'valid') return refused(request, reply, found.state);
    const action = invitePath(request.params.token);
    return reply.type(html).send(invitePage(request.locale, { action, login: found.login }).value);
  });

  app.post(
    '/invite/:token',
    {
      config: { audit: 'user.invite_accept' },
      schema: {
        params: Params,
        querystring: Query,
        body: Type.Object({
          password: Type.String({ maxLength: 1024 }),
          repeat: Type.String({ maxLength: 1024 }),
          login: Type.Optional(Type.String({ maxLength: 200 })),
          _csrf: Type.Optional(Type.String()),
        }),
      },
    },
    async (request, reply) => {
      const { token } = request.params;
      const t = translator(request.locale);
      if (!deps.config.localLogin) return localLoginOff(request, reply);
      const found = await inviteState(deps.db, token);
      if (found.state !== 'valid') return refused(request, reply, found.state);
      request.audit.actor = { userId: found.userId, login: found.login };
      request.audit.targetId = found.userId;
      const form = (error: string, code: number) =>
        reply
          .code(code)
          .type(html)
          .send(invitePage(request.locale, { action: invitePath(token), login: found.login, error }).value);
      if (request.body.password !== request.body.repeat) return form(t('invMismatch'), 400);
      let accepted;
      try {
        accepted = await acceptInvite(deps.db, token, request.body.password);
      } catch (error) {
        if (error instanceof InviteRefused) return refused(request, reply, error.state);
        if (!(error instanceof ServiceError)) throw error;
        request.auditError = error.message;
        if (error.code === 'invalid') return form(error.in(request.locale), 400);
        if (error.code !== 'unavailable') throw error;
        // The password hashing gate is full, as for a flood of logins: come back shortly.
        reply.header('retry-after', '5');
        return form(t('loginBusy'), 503);
      }
      await startSession(deps, request, reply, accepted.userId);
      return reply.redirect('/', 303);
    },
  );
}
