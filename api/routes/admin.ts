// Administration pages (users.manage): roles and grants, and the audit log.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from 'typebox';
import { listAudit } from '../../services/audit.js';
import {
  createRole,
  deleteRole,
  grant,
  listGrants,
  listRoles,
  listUsers,
  revokeGrant,
  updateRole,
} from '../../services/roles.js';
import { listTemplates } from '../../services/templates.js';
import { auditFilterOf, auditPage } from '../../views/pages/audit.js';
import { rolesPage } from '../../views/pages/roles.js';
import { permitted, signedIn } from '../access.js';
import type { AppDeps } from '../deps.js';
import { pageContext } from './pages.js';
import { IdParams } from './params.js';

const html = 'text/html; charset=utf-8';
const idParams = IdParams;
const roleBody = Type.Object({
  name: Type.Optional(Type.String({ maxLength: 1000 })),
  description: Type.Optional(Type.String({ maxLength: 5000 })),
  // One ticked checkbox arrives as a string; form validation (api/validation.ts) makes it a list of one.
  permissions: Type.Optional(Type.Array(Type.String({ maxLength: 100 }), { maxItems: 50 })),
  _csrf: Type.Optional(Type.String()),
});

type RoleForm = Static<typeof roleBody>;

const roleInput = (body: RoleForm) => ({
  name: body.name,
  description: body.description ?? '',
  permissions: body.permissions ?? [],
});

export async function adminRoutes(parent: FastifyInstance, { deps }: { deps: AppDeps }) {
  const app = parent.withTypeProvider<TypeBoxTypeProvider>();
  const db = deps.db;
  // Logged in (else to the login page) and holding users.manage (else a 403 page).
  app.addHook('preHandler', signedIn);
  app.addHook('preHandler', permitted('users.manage'));

  app.get('/admin/roles', async (request, reply) => {
    const [roles, grants, users, templates] = await Promise.all([
      listRoles(db),
      listGrants(db),
      listUsers(db),
      listTemplates(db, { visibleTemplates: 'all', orderBy: 'name', limit: 500 }),
    ]);
    return reply
      .type(html)
      .send(rolesPage(pageContext(request), { roles, grants, users, templates: templates.items }).value);
  });

  app.post('/admin/roles', { config: { audit: 'role.create' }, schema: { body: roleBody } }, async (request, reply) => {
    const role = await createRole(db, roleInput(request.body));
    request.audit.targetId = role.id;
    request.audit.detail = { name: role.name, permissions: role.permissions };
    return reply.redirect('/admin/roles', 303);
  });

  app.post(
    '/admin/roles/:id',
    { config: { audit: 'role.update' }, schema: { params: idParams, body: roleBody } },
    async (request, reply) => {
      const role = await updateRole(db, request.params.id, roleInput(request.body));
      request.audit.detail = { name: role.name, permissions: role.permissions };
      return reply.redirect('/admin/roles', 303);
    },
  );

  app.post(
    '/admin/roles/:id/delete',
    { config: { audit: 'role.delete' }, schema: { params: idParams } },
    async (request, reply) => {
      await deleteRole(db, request.params.id);
      return reply.redirect('/admin/roles', 303);
    },
  );

  app.post(
    '/admin/grants',
    {
      config: { audit: 'grant.create' },
      schema: {
        body: Type.Object({
          login: Type.Optional(Type.String({ maxLength: 200 })),
          roleId: Type.Optional(Type.String({ maxLength: 12 })),
          templateId: Type.Optional(Type.String({ maxLength: 12 })),
          _csrf: Type.Optional(Type.String()),
        }),
      },
    },
    async (request, reply) => {
      const number = (value: string | undefined) => (value && /^\d{1,10}$/.test(value) ? Number(value) : value || null);
      const created = await grant(db, {
        login: request.body.login,
        roleId: number(request.body.roleId),
        templateId: number(request.body.templateId),
      });
      request.audit.targetId = created.id;
      request.audit.detail = { login: created.login, role: created.roleName, templateId: created.templateId };
      return reply.redirect('/admin/roles', 303);
    },
  );

  app.post(
    '/admin/grants/:id/revoke',
    { config: { audit: 'grant.revoke' }, schema: { params: idParams } },
    async (request, reply) => {
      const revoked = await revokeGrant(db, request.params.id);
      request.audit.detail = { login: revoked.login, role: revoked.roleName, templateId: revoked.templateId };
      return reply.redirect('/admin/roles', 303);
    },
  );

  app.get(
    '/admin/audit',
    {
      schema: {
        querystring: Type.Object({
          actor: Type.Optional(Type.String({ maxLength: 64 })),
          action: Type.Optional(Type.String({ maxLength: 200 })),
          outcome: Type.Optional(Type.String({ maxLength: 20 })),
          targetType: Type.Optional(Type.String({ maxLength: 50 })),
          targetId: Type.Optional(Type.String({ maxLength: 50 })),
          since: Type.Optional(Type.String({ maxLength: 10 })),
          until: Type.Optional(Type.String({ maxLength: 10 })),
          cursor: Type.Optional(Type.Integer({ minimum: 1 })),
          lang: Type.Optional(Type.String({ maxLength: 5 })),
        }),
      },
    },
    async (request, reply) => {
      const page = await listAudit(db, auditFilterOf(request.query));
      return reply.type(html).send(auditPage(pageContext(request), request.query, page).value);
    },
  );
}
