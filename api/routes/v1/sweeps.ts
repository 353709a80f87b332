// Sweeps: processes made together from one template over a grid or random samples of its
// params (services/sweeps.ts). A sweep is checked on its template, like its processes; one
// the caller may not view answers 404.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { notFound, THINGS } from '../../../services/errors.js';
import { createSweep, getSweep, sweepTemplate } from '../../../services/sweeps.js';
import { API_VISIBILITY, authorize, can, loadTemplate } from '../../access.js';
import type { AppDeps } from '../../deps.js';
import { encodeNonFinite, shownTo } from './processes.js';
import { errors, IdParams, Sweep, SweepCreate, SweepResults } from './schemas.js';

export async function sweepRoutes(parent: FastifyInstance, { deps }: { deps: AppDeps }) {
  const app = parent.withTypeProvider<TypeBoxTypeProvider>();
  const processDeps = { db: deps.db, client: deps.temporal.client };

  app.post(
    '/templates/:id/sweeps',
    {
      config: { permission: 'processes.create', audit: 'sweep.create' },
      schema: {
        summary: "Sweep a template's params: one process per point",
        description:
          'grid: the cartesian product of the value lists (first key slowest); random: n samples, the same for ' +
          "the same seed. Keys are among the template's params; at most 500 processes. The processes are spread " +
          'over machineIds round robin, named by the params that differ, and started at once when start is true.',
        tags: ['sweeps'],
        params: IdParams,
        body: SweepCreate,
        response: { 201: Sweep, ...errors(404, 503) },
      },
      preHandler: loadTemplate(deps.db, ['processes.create'], API_VISIBILITY),
    },
    async (request, reply) => {
      const sweep = await createSweep(processDeps, request.template.id, request.body);
      request.audit.targetId = sweep.id;
      request.audit.detail = { templateId: sweep.templateId, processIds: sweep.processes.map((p) => p.id) };
      return reply
        .code(201)
        .send({ ...sweep, processes: sweep.processes.map((view) => shownTo(request.principal, view)) });
    },
  );

  app.get(
    '/sweeps/:id',
    {
      config: { permission: 'processes.view' },
      schema: {
        summary: "A sweep's processes with the final and best value of a metric",
        description:
          "final is the metric's value at the last step of each process's latest run; best its highest finite " +
          'value, or the lowest when the metric name contains "loss".',
        tags: ['sweeps'],
        params: IdParams,
        querystring: Type.Object({
          metric: Type.Optional(
            Type.String({ minLength: 1, maxLength: 200, default: 'test_accuracy', description: 'A series name.' }),
          ),
        }),
        response: { 200: SweepResults, ...errors(404) },
      },
    },
    async (request, reply) => {
      authorize(request, 'processes.view', { anywhere: true });
      const templateId = await sweepTemplate(deps, request.params.id);
      if (!can(request.principal, 'processes.view', templateId)) throw notFound(THINGS.sweep, request.params.id);
      const sweep = await getSweep(deps, request.params.id, request.query.metric ?? 'test_accuracy');
      // The schema's serialiser is bypassed here, so what it would drop is dropped by hand.
      const processes = sweep.processes.map((view) => {
        const { ownParams: _own, ...shown } = shownTo(request.principal, view);
        return shown;
      });
      const shown = { ...sweep, processes };
      // Serialised here, not by the schema's serialiser, to spell NaN and infinities.
      return reply.type('application/json; charset=utf-8').send(JSON.stringify(shown, encodeNonFinite));
    },
  );
}
