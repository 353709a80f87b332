// /api/v1/templates: training templates. Reading needs templates.view (a user sees
// only the templates they may view, filtered in SQL; env values masked unless they also
// hold templates.manage); writing needs templates.manage. Secret env is write-only.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { listProcesses } from '../../../services/process-list.js';
import {
  createTemplate,
  deleteTemplate,
  listTemplates,
  maskedTemplate,
  updateTemplate,
  type TemplateView,
} from '../../../services/templates.js';
import { API_VISIBILITY, authorize, can, loadTemplate, permitted, visibleTemplates } from '../../access.js';
import type { Principal } from '../../plugins/auth.js';
import type { AppDeps } from '../../deps.js';
import { shownTo } from './processes.js';
import {
  errors,
  NoContent,
  IdParams,
  list,
  Page,
  ProcessListQuery,
  Process,
  Status,
  Template,
  TemplateCreate,
  TemplatePatch,
} from './schemas.js';

export async function templateRoutes(parent: FastifyInstance, { deps }: { deps: AppDeps }) {
  const app = parent.withTypeProvider<TypeBoxTypeProvider>();
  const db = deps.db;
  const secrets = { secret: deps.secret };
  /** env values are for those who may change them; everyone else sees the names. */
  const shown = (principal: Principal, view: TemplateView) =>
    can(principal, 'templates.manage') ? view : maskedTemplate(view);
  const manage = permitted('templates.manage');

  app.get(
    '/templates',
    {
      config: { permission: 'templates.view' },
      schema: {
        summary: 'Templates the caller may view',
        tags: ['templates'],
        querystring: Type.Object(Page),
        response: { 200: list(Template), ...errors() },
      },
    },
    async (request) => {
      const principal = authorize(request, 'templates.view', { anywhere: true });
      const { limit, cursor } = request.query;
      const page = await listTemplates(db, {
        visibleTemplates: visibleTemplates(principal, 'templates.view'),
        limit: limit ?? 50,
        ...(cursor !== undefined ? { cursor } : {}),
      });
      return { ...page, items: page.items.map((view) => shown(principal, view)) };
    },
  );

  app.post(
    '/templates',
    {
      config: { permission: 'templates.manage', audit: 'template.create' },
      schema: {
        summary: 'Create a template',
        tags: ['templates'],
        body: TemplateCreate,
        response: { 201: Template, ...errors(409) },
      },
      preHandler: manage,
    },
    async (request, reply) => {
      const template = await createTemplate(db, request.body, secrets);
      request.audit.targetId = template.id;
      request.audit.detail = { name: template.name };
      return reply.code(201).send(template);
    },
  );

  app.get(
    '/templates/:id',
    {
      config: { permission: 'templates.view' },
      schema: {
        summary: 'One template',
        tags: ['templates'],
        params: IdParams,
        response: { 200: Template, ...errors(404) },
      },
      preHandler: loadTemplate(db, ['templates.view'], { ...API_VISIBILITY, hiddenUnless: 'templates.view' }),
    },
    async (request) => shown(request.principal!, request.template),
  );

  app.patch(
    '/templates/:id',
    {
      config: { permission: 'templates.manage', audit: 'template.update' },
      schema: {
        summary: 'Change a template',
        description:
          'Only the fields given change; null clears workingDir or totalSteps. secretEnv: a key given replaces its ' +
          'value, null removes it, a key left out is kept. Runs already started keep the template they started ' +
          'with.',
        tags: ['templates'],
        params: IdParams,
        body: TemplatePatch,
        response: { 200: Template, ...errors(404, 409) },
      },
      preHandler: manage,
    },
    async (request) => {
      request.audit.detail = { fields: Object.keys(request.body ?? {}) };
      return updateTemplate(db, request.params.id, request.body ?? {}, secrets);
    },
  );

  app.delete(
    '/templates/:id',
    {
      config: { permission: 'templates.manage', audit: 'template.delete' },
      schema: {
        summary: 'Delete a template',
        description: 'Refused (409) while processes use it.',
        tags: ['templates'],
        params: IdParams,
        response: { 204: NoContent, ...errors(404, 409) },
      },
      preHandler: manage,
    },
    async (request, reply) => {
      await deleteTemplate(db, request.params.id);
      return reply.code(204).send();
    },
  );

  app.get(
    '/templates/:id/processes',
    {
      config: { permission: 'processes.view' },
      schema: {
        summary: 'Processes of a template',
        tags: ['templates', 'processes'],
        params: IdParams,
        querystring: Type.Object({ status: Type.Optional(Status), ...ProcessListQuery }),
        response: { 200: list(Process, 'token'), ...errors(404) },
      },
      preHandler: loadTemplate(db, ['processes.view'], API_VISIBILITY),
    },
    async (request) => {
      const principal = request.principal!;
      const { status, limit, cursor, sort, order, q } = request.query;
      const page = await listProcesses(db, {
        templateId: request.template.id,
        visibleTemplates: visibleTemplates(principal),
        ...(status ? { status } : {}),
        ...(limit !== undefined ? { limit } : {}),
        ...(cursor !== undefined ? { cursor } : {}),
        ...(sort ? { sort } : {}),
        ...(order ? { order } : {}),
        ...(q !== undefined ? { search: q } : {}),
      });
      return { nextCursor: page.nextCursor, items: page.items.map((view) => shownTo(principal, view)) };
    },
  );
}
