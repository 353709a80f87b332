// The sweep page: a sweep's processes, the params that differ and one metric's final and
// best values. Hidden (404) from a reader who may not view the sweep's template.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { notFound, THINGS } from '../../../services/errors.js';
import { getSweep, sweepTemplate } from '../../../services/sweeps.js';
import { sweepPage } from '../../../views/pages/sweep.js';
import { authorize, can, intParam } from '../../access.js';
import type { AppDeps } from '../../deps.js';
import { pageContext } from '../pages.js';
import { PathIdParams } from '../params.js';
import { sendHtml } from './common.js';

export async function sweepRoutes(parent: FastifyInstance, { deps }: { deps: AppDeps }) {
  const app = parent.withTypeProvider<TypeBoxTypeProvider>();

  app.get(
    '/training/sweeps/:id',
    {
      schema: {
        params: PathIdParams,
        querystring: Type.Object({
          metric: Type.Optional(Type.String({ maxLength: 200 })),
          sort: Type.Optional(Type.String({ maxLength: 200 })),
          desc: Type.Optional(Type.String({ maxLength: 5 })),
          lang: Type.Optional(Type.String()),
        }),
      },
    },
    async (request, reply) => {
      const id = intParam(request.params.id, 'sweep');
      const templateId = await sweepTemplate(deps, id);
      if (!can(request.principal, 'templates.view', templateId)) throw notFound(THINGS.sweep, id);
      authorize(request, 'processes.view', { templateId });
      const metric = request.query.metric?.trim() || 'test_accuracy';
      const sweep = await getSweep(deps, id, metric);
      return sendHtml(
        reply,
        sweepPage(pageContext(request), {
          ...sweep,
          sort: request.query.sort ?? 'final',
          desc: request.query.sort === undefined ? true : request.query.desc === '1',
        }),
      );
    },
  );
}
