// /api/v1/users: user accounts and their grants, for holders of users.manage (global).
// Passwords go in, or come out once when generated; hashes never leave.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { createUserAccount, listUserViews, resetPassword, updateUser } from '../../../services/users.js';
import { permitted } from '../../access.js';
import type { AppDeps } from '../../deps.js';
import { errors, IdParams, list, PasswordReset, User, UserCreate, UserCreated, UserPatch } from './schemas.js';

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
          'Without a password, one is generated and returned once as `password`. Each grant names a role and, for a ' +
          'grant on one template, its templateId.',
        tags: ['users'],
        body: UserCreate,
        response: { 201: UserCreated, ...errors(409) },
      },
      preHandler: manage,
    },
    async (request, reply) => {
      const { user, password } = await createUserAccount(deps.db, request.body);
      request.audit.targetId = user.id;
      request.audit.detail = { login: user.login, roles: user.roles, generatedPassword: password !== undefined };
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
}
