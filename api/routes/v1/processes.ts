// /api/v1/processes: create, read, act on and delete training processes; runs, logs and
// metrics. Each check is made on the process's template (a scoped grant reaches only
// its template's processes); a process the caller may not view answers 404.
import { Readable } from 'node:stream';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { UserAction } from '../../../domain/status.js';
import { withoutAddress } from '../../../domain/redact-address.js';
import { invalid, notFound, THINGS } from '../../../services/errors.js';
import { queryMetrics } from '../../../metrics/query.js';
import { EXPORT_FORMATS, EXPORT_MEDIA, exportPoints } from '../../../metrics/export.js';
import {
  act,
  createProcess,
  deleteProcess,
  findRun,
  listRuns,
  logTail,
  type ProcessView,
} from '../../../services/processes.js';
import { listProcesses } from '../../../services/process-list.js';
import { createProcesses, renameProcess } from '../../../services/sweeps.js';
import { validParams } from '../../../services/templates.js';
import { API_VISIBILITY, authorize, can, loadProcess, visibleTemplates } from '../../access.js';
import type { Principal } from '../../plugins/auth.js';
import type { AppDeps } from '../../deps.js';
import {
  ActionAccepted,
  errors,
  ExportBody,
  IdParams,
  list,
  Logs,
  Metrics,
  Process,
  ProcessListQuery,
  ProcessCreate,
  ProcessItems,
  ProcessPatch,
  Run,
  Status,
} from './schemas.js';

/** JSON has no NaN or infinities: they travel as the strings the OpenAPI document names. */
export function encodeNonFinite(_key: string, value: unknown): unknown {
  if (typeof value === 'number' && !Number.isFinite(value))
    return Number.isNaN(value) ? 'NaN' : value > 0 ? 'Infinity' : '-Infinity';
  return value;
}

const runQuery = {
  run: Type.Optional(
    Type.Integer({ minimum: 1, maximum: 2_147_483_647, description: 'Run number; the latest run when omitted.' }),
  ),
};

/** A process as `principal` may see it: no machine address without machines.view. */
export const shownTo = <T extends ProcessView>(principal: Principal | null, view: T): T =>
  can(principal, 'machines.view') ? view : withoutAddress(view);

export async function processRoutes(parent: FastifyInstance, { deps }: { deps: AppDeps }) {
  const app = parent.withTypeProvider<TypeBoxTypeProvider>();
  const db = deps.db;
  const processDeps = { db, client: deps.temporal.client };
  /** The process of `:id`, as `request.process`: 404 when the caller may not view it, 403 without `permission`. */
  const theProcess = (permission: 'processes.view' | 'processes.manage' | 'processes.delete') =>
    loadProcess(db, permission, API_VISIBILITY);

  app.get(
    '/processes',
    {
      config: { permission: 'processes.view' },
      schema: {
        summary: 'Processes the caller may view, paginated',
        tags: ['processes'],
        querystring: Type.Object({
          status: Type.Optional(Status),
          machineId: Type.Optional(IdParams.properties.id),
          templateId: Type.Optional(IdParams.properties.id),
          ...ProcessListQuery,
        }),
        response: { 200: list(Process, 'token'), ...errors() },
      },
    },
    async (request) => {
      const principal = authorize(request, 'processes.view', { anywhere: true });
      const { status, machineId, templateId, limit, cursor, sort, order, q } = request.query;
      const page = await listProcesses(db, {
        visibleTemplates: visibleTemplates(principal),
        ...(status ? { status } : {}),
        ...(machineId !== undefined ? { machineId } : {}),
        ...(templateId !== undefined ? { templateId } : {}),
        ...(limit !== undefined ? { limit } : {}),
        ...(cursor !== undefined ? { cursor } : {}),
        ...(sort ? { sort } : {}),
        ...(order ? { order } : {}),
        ...(q !== undefined ? { search: q } : {}),
      });
      return { nextCursor: page.nextCursor, items: page.items.map((view) => shownTo(principal, view)) };
    },
  );

  app.post(
    '/processes',
    {
      config: { permission: 'processes.create', audit: 'process.create' },
      schema: {
        summary: 'Create a process (status created), or several at once',
        description:
          'With machineId: one process, answered as the process. With machineIds: perMachine processes on each ' +
          'machine (at most 500 in all), named `name` or by default, started at once when start is true; answered ' +
          'as {items}. Made in one go: the rows together, their workflows started before the answer.',
        tags: ['processes'],
        body: ProcessCreate,
        response: { 201: { anyOf: [Process, ProcessItems] }, ...errors(503) },
      },
    },
    async (request, reply) => {
      const principal = authorize(request, 'processes.create', { anywhere: true });
      const { templateId, machineId, machineIds } = request.body;
      // A template the caller may not see is answered as one that does not exist.
      if (!can(principal, 'processes.view', templateId))
        throw invalid('templateId', notFound(THINGS.template, templateId).text);
      authorize(request, 'processes.create', { templateId });
      if (machineIds !== undefined) {
        if (machineId !== undefined)
          throw invalid('machineId', {
            en: 'Send machineId or machineIds, not both.',
            ru: 'Пришлите machineId или machineIds, не оба.',
          });
        const items = await createProcesses(processDeps, { ...request.body, machineIds });
        request.audit.detail = { templateId, machineIds, processIds: items.map((item) => item.id) };
        return reply.code(201).send({ items: items.map((view) => shownTo(principal, view)) });
      }
      if (machineId === undefined)
        throw invalid('machineId', {
          en: 'machineId (or machineIds) is required.',
          ru: 'Нужен machineId (или machineIds).',
        });
      const extra = (['perMachine', 'name', 'start'] as const).find((key) => request.body[key] !== undefined);
      if (extra)
        throw invalid(extra, { en: `${extra} goes with machineIds.`, ru: `${extra} — только вместе с machineIds.` });
      const params = validParams(request.body.params);
      const created = await createProcess(processDeps, { templateId, machineId, params });
      request.audit.targetId = created.id;
      request.audit.detail = { templateId, machineId };
      return reply.code(201).send(created);
    },
  );

  app.patch(
    '/processes/:id',
    {
      config: { permission: 'processes.manage', audit: 'process.rename' },
      schema: {
        summary: 'Rename a process',
        description: "An empty name goes back to the default: the template's name and the params that differ.",
        tags: ['processes'],
        params: IdParams,
        body: ProcessPatch,
        response: { 200: Process, ...errors(404) },
      },
      preHandler: theProcess('processes.manage'),
    },
    async (request) => {
      const renamed = await renameProcess(processDeps, request.params.id, request.body.name);
      request.audit.detail = { name: renamed.name };
      return shownTo(request.principal, renamed);
    },
  );

  app.get(
    '/processes/:id',
    {
      config: { permission: 'processes.view' },
      schema: {
        summary: 'One process',
        tags: ['processes'],
        params: IdParams,
        response: { 200: Process, ...errors(404) },
      },
      preHandler: theProcess('processes.view'),
    },
    async (request) => shownTo(request.principal, request.process),
  );

  for (const action of ['start', 'stop', 'disable', 'enable'] as const satisfies readonly Exclude<
    UserAction,
    'delete'
  >[]) {
    app.post(
      `/processes/:id/${action}`,
      {
        config: { permission: 'processes.manage', audit: `process.${action}` },
        schema: {
          summary: `${action[0]!.toUpperCase()}${action.slice(1)} a process`,
          description:
            'Accepted (202) with the status right after; refused (409) with the reason when the status does not ' +
            'allow it.',
          tags: ['processes'],
          params: IdParams,
          response: { 202: ActionAccepted, ...errors(404, 409) },
        },
        preHandler: theProcess('processes.manage'),
      },
      async (request, reply) => {
        const result = await act(processDeps, request.params.id, action);
        request.audit.detail = { status: result.status };
        return reply.code(202).send(result);
      },
    );
  }

  app.delete(
    '/processes/:id',
    {
      config: { permission: 'processes.delete', audit: 'process.delete' },
      schema: {
        summary: 'Delete a process',
        description:
          'Stops it first when active; its runs, metrics, logs and run directories go with it, and the id answers ' +
          '404 once gone. When the machine cannot be reached the delete is refused (409) unless force=true.',
        tags: ['processes'],
        params: IdParams,
        querystring: Type.Object({ force: Type.Optional(Type.Boolean({ default: false })) }),
        response: { 202: ActionAccepted, ...errors(404, 409) },
      },
      preHandler: theProcess('processes.delete'),
    },
    async (request, reply) => {
      const force = request.query.force === true;
      const result = await deleteProcess(processDeps, request.params.id, { force });
      request.audit.detail = { force, status: result.status };
      return reply.code(202).send(result);
    },
  );

  app.get(
    '/processes/:id/metrics',
    {
      config: { permission: 'processes.view' },
      schema: {
        summary: "A run's metric series, downsampled with spikes kept",
        description: NON_FINITE,
        tags: ['processes'],
        params: IdParams,
        querystring: Type.Object({
          names: Type.Optional(
            Type.String({
              maxLength: 4000,
              description: 'Comma-separated series names, e.g. lr,loss,test_accuracy; every series when omitted.',
            }),
          ),
          maxPoints: Type.Optional(
            Type.Integer({
              minimum: 2,
              maximum: 10_000,
              default: 2000,
              description: 'At most this many points per series.',
            }),
          ),
          ...runQuery,
        }),
        response: { 200: Metrics, ...errors(404) },
      },
      preHandler: theProcess('processes.view'),
    },
    async (request, reply) => {
      const run = await findRun(deps, request.params.id, request.query.run);
      const names = request.query.names
        ?.split(',')
        .map((name) => name.trim())
        .filter((name) => name.length > 0);
      const { series } = await queryMetrics(db, deps.sql, {
        runId: run.id,
        maxPoints: request.query.maxPoints ?? 2000,
        ...(names ? { names } : {}),
      });
      // Serialised here, not by the schema's serialiser, to spell NaN and infinities.
      return reply
        .type('application/json; charset=utf-8')
        .send(JSON.stringify({ run: run.number, series }, encodeNonFinite));
    },
  );

  app.get(
    '/processes/:id/metrics/export',
    {
      config: { permission: 'processes.view' },
      schema: {
        summary: 'Every point of a run, streamed as CSV or JSON lines',
        description: EXPORT_NOTE,
        tags: ['processes'],
        params: IdParams,
        querystring: Type.Object({
          ...runQuery,
          format: Type.Optional(
            Type.Unsafe<(typeof EXPORT_FORMATS)[number]>({
              type: 'string',
              enum: [...EXPORT_FORMATS],
              default: 'csv',
              description: 'csv (series,step,value) or jsonl (one JSON object a line).',
            }),
          ),
        }),
        produces: Object.values(EXPORT_MEDIA).map((media) => media.split(';')[0]!),
        response: { 200: ExportBody, ...errors(404) },
      },
      preHandler: theProcess('processes.view'),
    },
    async (request, reply) => {
      const run = await findRun(deps, request.params.id, request.query.run);
      const format = request.query.format ?? 'csv';
      // Readable.from pulls the next batch only when the socket has taken the last one.
      return reply
        .type(EXPORT_MEDIA[format])
        .header(
          'content-disposition',
          `attachment; filename="process-${request.params.id}-run-${run.number}.${format}"`,
        )
        .header('cache-control', 'no-store')
        .send(Readable.from(exportPoints(deps.sql, run.id, format)));
    },
  );

  app.get(
    '/processes/:id/runs',
    {
      config: { permission: 'processes.view' },
      schema: {
        summary: 'Runs of a process, oldest first',
        tags: ['processes'],
        params: IdParams,
        response: { 200: list(Run), ...errors(404) },
      },
      preHandler: theProcess('processes.view'),
    },
    async (request) => ({ items: await listRuns(deps, request.params.id), nextCursor: null }),
  );

  app.get(
    '/processes/:id/logs',
    {
      config: { permission: 'processes.view' },
      schema: {
        summary: "The tail of a run's stdout and stderr, and the process's own events",
        tags: ['processes'],
        params: IdParams,
        querystring: Type.Object(runQuery),
        response: { 200: Logs, ...errors(404) },
      },
      preHandler: theProcess('processes.view'),
    },
    async (request) => logTail(deps, request.params.id, request.query.run),
  );
}

const NON_FINITE =
  'Values are JSON numbers, except that NaN, +Infinity and -Infinity (kept: a diverging loss is what operators ' +
  'must see) are sent as the strings "NaN", "Infinity" and "-Infinity".';

const EXPORT_NOTE =
  'Not downsampled: every point, series by name, then by step, in one snapshot, streamed (constant memory on the ' +
  'server). CSV has the header series,step,value, and NaN, Infinity and -Infinity bare. JSON lines are ' +
  '{"series":"loss","step":5,"value":0.25}, a non-finite value as the string "NaN", "Infinity" or "-Infinity". ' +
  'Sent as an attachment named process-<id>-run-<n>.csv or .jsonl.';
