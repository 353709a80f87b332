// Administration → Users (users.manage): the page and its forms. The forms reach the same
// services as /api/v1/users; a refusal shows on the page, in the reader's language.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { ServiceError } from '../../services/errors.js';
import { reissueInvite } from '../../services/invites.js';
import { grant, listGrants, listRoles, revokeGrant } from '../../services/roles.js';
import { listTemplates } from '../../services/templates.js';
import {
  createUserAccount,
  getUserView,
  LastAdminError,
  listUserViews,
  resetPassword,
  updateUser,
} from '../../services/users.js';
import { translator } from '../../views/i18n.js';
import { usersPage, type UsersPageData } from '../../views/pages/users.js';
import { permitted, signedIn } from '../access.js';
import type { AppDeps } from '../deps.js';
import { inviteUrl } from './invite.js';
import { pageContext } from './pages.js';
import { IdParams } from './params.js';

const html = 'text/html; charset=utf-8';
const formId = Type.Optional(Type.String({ maxLength: 12 }));
const csrf = { _csrf: Type.Optional(Type.String()) };

/** A form's select: an id, or nothing chosen. */
const chosen = (value: string | undefined): number | null => (value && /^\d{1,9}$/.test(value) ? Number(value) : null);

export async function adminUserRoutes(parent: FastifyInstance, { deps }: { deps: AppDeps }) {
  const app = parent.withTypeProvider<TypeBoxTypeProvider>();
  const db = deps.db;
  app.addHook('preHandler', signedIn);
  app.addHook('preHandler', permitted('users.manage'));

  async function render(
    request: FastifyRequest,
    reply: FastifyReply,
    extra: Pick<UsersPageData, 'shown' | 'error'> = {},
    status = 200,
  ) {
    const [users, grants, roles, templates] = await Promise.all([
      listUserViews(db),
      listGrants(db),
      listRoles(db),
      listTemplates(db, { visibleTemplates: 'all', orderBy: 'name', limit: 500 }),
    ]);
    const data = { users, grants, roles, templates: templates.items, ...extra };
    return reply
      .code(status)
      .type(html)
      .send(usersPage(pageContext(request), data).value);
  }

  /** Runs a form's action; an expected refusal redisplays the page with the reason. */
  async function refusable(request: FastifyRequest, reply: FastifyReply, action: () => Promise<FastifyReply>) {
    try {
      return await action();
    } catch (error) {
      if (!(error instanceof ServiceError) || error.code === 'forbidden' || error.code === 'unauthenticated')
        throw error;
      // The response is sent by hand; the audit log still learns why.
      request.auditError = error.message;
      const t = translator(request.locale);
      let message = error.in(request.locale);
      if (error instanceof LastAdminError) message = t('usrLastAdmin');
      else if (error.field === 'login') message = error.code === 'conflict' ? t('usrLoginTaken') : t('usrLoginRule');
      return render(
        request,
        reply,
        { error: message },
        error.code === 'invalid' ? 400 : error.code === 'not_found' ? 404 : 409,
      );
    }
  }

  app.get('/admin/users', async (request, reply) => render(request, reply));

  app.post(
    '/admin/users',
    {
      config: { audit: 'user.create' },
      schema: {
        body: Type.Object({
          login: Type.String({ maxLength: 200 }),
          name: Type.Optional(Type.String({ maxLength: 1000 })),
          roleId: formId,
          templateId: formId,
          /** How the new user gets in: a one-time password (the default) or an invite link. */
          credential: Type.Optional(Type.String({ enum: ['password', 'invite'] })),
          ...csrf,
        }),
      },
    },
    async (request, reply) =>
      refusable(request, reply, async () => {
        const roleId = chosen(request.body.roleId);
        const role = roleId === null ? null : (await listRoles(db)).find((r) => r.id === roleId);
        if (roleId !== null && !role)
          throw new ServiceError('invalid', { en: `No role ${roleId}.`, ru: `Нет роли ${roleId}.` }, 'roleId');
        const templateId = chosen(request.body.templateId);
        const byInvite = request.body.credential === 'invite';
        const { user, password, invite } = await createUserAccount(db, {
          login: request.body.login.trim(),
          name: request.body.name ?? '',
          roles: role ? [{ role: role.name, templateId }] : [],
          ...(byInvite ? { invite: true } : {}),
        });
        request.audit.targetId = user.id;
        request.audit.detail = {
          login: user.login,
          roles: user.roles,
          ...(invite ? { invite: true, inviteExpiresAt: invite.expiresAt.toISOString() } : { generatedPassword: true }),
        };
        const shown: UsersPageData['shown'] = invite
          ? {
              kind: 'invited',
              login: user.login,
              inviteUrl: inviteUrl(deps.config, request, invite.token),
              expiresAt: invite.expiresAt,
            }
          : { kind: 'created', login: user.login, password: password! };
        return render(request, reply, { shown });
      }),
  );

  app.post(
    '/admin/users/:id/active',
    {
      config: { audit: 'user.update' },
      schema: { params: IdParams, body: Type.Object({ active: Type.String({ enum: ['true', 'false'] }), ...csrf }) },
    },
    async (request, reply) =>
      refusable(request, reply, async () => {
        const active = request.body.active === 'true';
        const user = await updateUser(db, request.params.id, { active });
        request.audit.detail = { login: user.login, active };
        return reply.redirect('/admin/users', 303);
      }),
  );

  app.post(
    '/admin/users/:id/password',
    { config: { audit: 'user.reset_password' }, schema: { params: IdParams, body: Type.Object(csrf) } },
    async (request, reply) =>
      refusable(request, reply, async () => {
        const { user, password } = await resetPassword(db, request.params.id);
        request.audit.detail = { login: user.login };
        return render(request, reply, { shown: { login: user.login, password, kind: 'reset' } });
      }),
  );

  app.post(
    '/admin/users/:id/invite',
    { config: { audit: 'user.invite' }, schema: { params: IdParams, body: Type.Object(csrf) } },
    async (request, reply) =>
      refusable(request, reply, async () => {
        const invite = await reissueInvite(db, request.params.id);
        const user = await getUserView(db, request.params.id);
        request.audit.detail = { login: user.login, inviteExpiresAt: invite.expiresAt.toISOString() };
        const link = inviteUrl(deps.config, request, invite.token);
        return render(request, reply, {
          shown: { kind: 'reinvited', login: user.login, inviteUrl: link, expiresAt: invite.expiresAt },
        });
      }),
  );

  app.post(
    '/admin/users/:id/grants',
    {
      config: { audit: 'grant.create' },
      schema: { params: IdParams, body: Type.Object({ roleId: formId, templateId: formId, ...csrf }) },
    },
    async (request, reply) =>
      refusable(request, reply, async () => {
        const user = await getUserView(db, request.params.id);
        const created = await grant(db, {
          login: user.login,
          roleId: chosen(request.body.roleId),
          templateId: chosen(request.body.templateId),
        });
        request.audit.targetType = 'user';
        request.audit.detail = { login: created.login, role: created.roleName, templateId: created.templateId };
        return reply.redirect('/admin/users', 303);
      }),
  );

  app.post(
    '/admin/users/grants/:id/revoke',
    { config: { audit: 'grant.revoke' }, schema: { params: IdParams, body: Type.Optional(Type.Object(csrf)) } },
    async (request, reply) =>
      refusable(request, reply, async () => {
        const revoked = await revokeGrant(db, request.params.id);
        request.audit.detail = { login: revoked.login, role: revoked.roleName, templateId: revoked.templateId };
        return reply.redirect('/admin/users', 303);
      }),
  );
}
