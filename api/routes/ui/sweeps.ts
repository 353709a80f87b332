// The sweep page: a sweep's processes, the params that differ and one metric's final and
// best values, and the chosen processes' curves of that metric on one chart. Hidden (404)
// from a reader who may not view the sweep's template.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { notFound, THINGS } from '../../../services/errors.js';
import { comparedIds, MAX_COMPARED, sweepCurves } from '../../../services/sweep-curves.js';
import { getSweep, sweepTemplate } from '../../../services/sweeps.js';
import { sweepPage, sweepRows } from '../../../views/pages/sweep.js';
import { authorize, can, intParam } from '../../access.js';
import type { AppDeps } from '../../deps.js';
import { pageContext } from '../pages.js';
import { PathIdParams } from '../params.js';
import { sendHtml } from './common.js';

/** Ticked processes: `compare=1&compare=2` (a single value is a list of one). */
const Compare = Type.Optional(Type.Array(Type.String({ maxLength: 12 }), { maxItems: MAX_COMPARED }));

/** What the page and its rows are asked with: the metric, the order and the ticked processes. */
const PageQuery = Type.Object({
  metric: Type.Optional(Type.String({ maxLength: 200 })),
  sort: Type.Optional(Type.String({ maxLength: 200 })),
  desc: Type.Optional(Type.String({ maxLength: 5 })),
  compare: Compare,
  lang: Type.Optional(Type.String()),
});

/** The table's order: by the final value, highest first, unless asked otherwise. */
function order(query: { sort?: string; desc?: string }): { sort: string; desc: boolean } {
  return { sort: query.sort ?? 'final', desc: query.sort === undefined ? true : query.desc === '1' };
}

export async function sweepRoutes(parent: FastifyInstance, { deps }: { deps: AppDeps }) {
  const app = parent.withTypeProvider<TypeBoxTypeProvider>();

  app.get(
    '/training/sweeps/:id',
    {
      schema: {
        params: PathIdParams,
        querystring: PageQuery,
      },
    },
    async (request, reply) => {
      const { sweep, compare } = await load(request.params.id, request);
      const curves = await sweepCurves(deps, sweep.processes, sweep.metric, compare);
      return sendHtml(
        reply,
        sweepPage(pageContext(request), {
          ...sweep,
          ...order(request.query),
          compare,
          curves,
        }),
      );
    },
  );

  // The table's rows alone: what the page fetches every two seconds while processes run.
  app.get(
    '/training/sweeps/:id/rows',
    {
      schema: {
        params: PathIdParams,
        querystring: PageQuery,
      },
    },
    async (request, reply) => {
      const { sweep, compare } = await load(request.params.id, request);
      return sendHtml(
        reply.header('cache-control', 'no-store'),
        sweepRows(pageContext(request), {
          ...sweep,
          ...order(request.query),
          compare,
          curves: [],
        }),
      );
    },
  );

  // The compare chart's data, for the page script to redraw as boxes are ticked.
  app.get(
    '/training/sweeps/:id/curves',
    {
      schema: {
        params: PathIdParams,
        querystring: Type.Object({
          metric: Type.Optional(Type.String({ maxLength: 200 })),
          compare: Compare,
          lang: Type.Optional(Type.String()),
        }),
      },
    },
    async (request, reply) => {
      const { sweep, compare } = await load(request.params.id, request);
      const curves = await sweepCurves(deps, sweep.processes, sweep.metric, compare);
      return reply.header('cache-control', 'no-store').send({ metric: sweep.metric, curves });
    },
  );

  /** The sweep, hidden (404) from a reader who may not view its template, and the processes to compare. */
  async function load(rawId: string, request: FastifyRequest & { query: { metric?: string; compare?: string[] } }) {
    const id = intParam(rawId, 'sweep');
    const templateId = await sweepTemplate(deps, id);
    if (!can(request.principal, 'templates.view', templateId)) throw notFound(THINGS.sweep, id);
    authorize(request, 'processes.view', { templateId });
    const metric = request.query.metric?.trim() || 'test_accuracy';
    return { sweep: await getSweep(deps, id, metric), compare: comparedIds(request.query.compare ?? []) };
  }
}
