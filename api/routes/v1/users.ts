// /api/v1/users: user accounts and their grants, for holders of users.manage (global).
// Passwords go in, or come out once when generated (or an invite link, once); hashes never leave.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { reissueInvite } from '../../../services/invites.js';
import { createUserAccount, getUserView, listUserViews, resetPassword, updateUser } from '../../../services/users.js';
import { permitted } from '../../access.js';
import type { AppDeps } from '../../deps.js';
import { inviteUrl } from '../invite.js';
import {
  errors,
  IdParams,
  InviteIssued,
  list,
  PasswordReset,
  User,
  UserCreate,
  UserCreated,
  UserPatch,
} from './schemas.js';

export async function userRoutes(parent: FastifyInstance, { deps }: { deps: AppDeps }) {
  const app = parent.withTypeProvider<TypeBoxTypeProvider>();
  const manage = permitted('users.manage');
  const config = (audit?: string) => ({ permission: 'users.manage', ...(audit ? { audit } : {}) });

  app.get(
    '/users',
    {
      config: config(),
      schema: { summary: 'Users with their roles', tags: ['users'], response: { 200: list(User), ...errors() } },
      preHandler: manage,
    },
    async () => ({ items: await listUserViews(deps.db), nextCursor: null }),
  );

  app.post(
    '/users',
    {
      config: config('user.create'),
      schema: {
        summary: 'Create a user',
        description:
          'Without a password, one is generated and returned once as `password`; with `invite: true` instead, the ' +
          'user gets no password and `inviteUrl` is returned once: a link, valid 7 days and single use, on which ' +
          'they set their own. Each grant names a role and, for a grant on one template, its templateId.',
        tags: ['users'],
        body: UserCreate,
        response: { 201: UserCreated, ...errors(409) },
      },
      preHandler: manage,
    },
    async (request, reply) => {
      const { user, password, invite } = await createUserAccount(deps.db, request.body);
      request.audit.targetId = user.id;
      request.audit.detail = {
        login: user.login,
        roles: user.roles,
        generatedPassword: password !== undefined,
        ...(invite ? { invite: true, inviteExpiresAt: invite.expiresAt.toISOString() } : {}),
      };
      if (invite) return reply.code(201).send({ ...user, inviteUrl: inviteUrl(deps.config, request, invite.token) });
      return reply.code(201).send(password === undefined ? user : { ...user, password });
    },
  );

  app.patch(
    '/users/:id',
    {
      config: config('user.update'),
      schema: {
        summary: 'Change a user',
        description:
          'Only the fields given change; roles replaces every grant. `active: false` ends the user’s sessions and ' +
          'revokes their tokens at once. Refused (409) when no active user would be left holding users.manage ' +
          'globally.',
        tags: ['users'],
        params: IdParams,
        body: UserPatch,
        response: { 200: User, ...errors(404, 409) },
      },
      preHandler: manage,
    },
    async (request) => {
      const user = await updateUser(deps.db, request.params.id, request.body);
      request.audit.detail = { login: user.login, ...request.body };
      return user;
    },
  );

  app.post(
    '/users/:id/password',
    {
      config: config('user.reset_password'),
      schema: {
        summary: "Reset a user's password",
        description: 'Generates a new one-time password, returned once; the user’s sessions end.',
        tags: ['users'],
        params: IdParams,
        response: { 200: PasswordReset, ...errors(404) },
      },
      preHandler: manage,
    },
    async (request) => {
      const reset = await resetPassword(deps.db, request.params.id);
      request.audit.detail = { login: reset.user.login };
      return reset;
    },
  );

  app.post(
    '/users/:id/invite',
    {
      config: config('user.invite'),
      schema: {
        summary: 'Issue a new invite link',
        description:
          'For a user who has not accepted their invite yet (it may have expired): a new link, valid 7 days, ' +
          'returned once; the previous link stops working. Refused (409) once the user has set a password.',
        tags: ['users'],
        params: IdParams,
        response: { 200: InviteIssued, ...errors(404, 409) },
      },
      preHandler: manage,
    },
    async (request) => {
      const invite = await reissueInvite(deps.db, request.params.id);
      const user = await getUserView(deps.db, request.params.id);
      request.audit.detail = { login: user.login, inviteExpiresAt: invite.expiresAt.toISOString() };
      return { user, inviteUrl: inviteUrl(deps.config, request, invite.token) };
    },
  );
}
