// Training monitoring: the page, and the chart data it polls while a run is active.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from 'typebox';
import { isStatus, STATUS_LABELS } from '../../../domain/status.js';
import { notFound, ServiceError, THINGS } from '../../../services/errors.js';
import { queryMetrics } from '../../../metrics/query.js';
import { findRun, listRuns } from '../../../services/processes.js';
import { CHART_SERIES, chartData, chartRun, MAX_POINTS, type ChartData } from '../../../views/fragments/chart-data.js';
import type { Locale } from '../../../views/i18n.js';
import { monitoringPage } from '../../../views/pages/monitoring.js';
import type { AppDeps } from '../../deps.js';
import { pageContext } from '../pages.js';
import { can, intParam, loadProcess, PAGE_VISIBILITY } from '../../access.js';
import { PathIdParams } from '../params.js';
import { sendHtml } from './common.js';

const schema = {
  params: PathIdParams,
  querystring: Type.Object({
    run: Type.Optional(Type.String({ maxLength: 12 })),
    compare: Type.Optional(Type.String({ maxLength: 12 })),
    lang: Type.Optional(Type.String()),
  }),
};

type Query = Static<typeof schema.querystring>;

export async function monitoringRoutes(parent: FastifyInstance, { deps }: { deps: AppDeps }) {
  const app = parent.withTypeProvider<TypeBoxTypeProvider>();
  const theProcess = loadProcess(deps.db, 'processes.view', PAGE_VISIBILITY);

  /** The run asked for (else the latest) and the one to overlay, if any and different. */
  function pick(query: Query, runNumbers: number[]): { run: number | null; compare: number | null } {
    if (runNumbers.length === 0) return { run: null, compare: null };
    const wanted = query.run ? intParam(query.run, 'run') : runNumbers.at(-1)!;
    if (!runNumbers.includes(wanted)) throw notFound(THINGS.run, wanted);
    const compare = query.compare ? intParam(query.compare, 'compare') : null;
    if (compare !== null && !runNumbers.includes(compare)) throw notFound(THINGS.run, compare);
    return { run: wanted, compare: compare === wanted ? null : compare };
  }

  async function data(processId: number, numbers: number[], locale: Locale): Promise<ChartData> {
    const runs = await Promise.all(
      numbers.map(async (number) => {
        const run = await findRun(deps, processId, number);
        const { series } = await queryMetrics(deps.db, deps.sql, {
          runId: run.id,
          names: CHART_SERIES,
          maxPoints: MAX_POINTS,
        });
        return chartRun(run, series, locale);
      }),
    );
    return chartData(processId, runs, locale);
  }

  app.get('/training/processes/:id/monitoring', { schema, preHandler: theProcess }, async (request, reply) => {
    const view = request.process;
    const runs = await listRuns(deps, view.id);
    const { run, compare } = pick(
      request.query,
      runs.map((r) => r.number),
    );
    const chart = run === null ? null : await data(view.id, compare === null ? [run] : [run, compare], request.locale);
    return sendHtml(
      reply,
      monitoringPage(pageContext(request), {
        view,
        runs: runs
          .map((r) => ({
            number: r.number,
            statusLabel: isStatus(r.status) ? STATUS_LABELS[r.status][request.locale] : r.status,
            startedAt: r.startedAt,
          }))
          .reverse(),
        run,
        compare,
        data: chart,
        canRename: can(request.principal, 'processes.manage', view.templateId),
      }),
    );
  });

  app.get('/training/processes/:id/metrics', { schema, preHandler: theProcess }, async (request, reply) => {
    const view = request.process;
    const runs = await listRuns(deps, view.id);
    const { run, compare } = pick(
      request.query,
      runs.map((r) => r.number),
    );
    if (run === null)
      throw new ServiceError('not_found', {
        en: `Process ${view.id} has no runs yet.`,
        ru: `У процесса ${view.id} ещё нет запусков.`,
      });
    const body = await data(view.id, compare === null ? [run] : [run, compare], request.locale);
    return reply.header('cache-control', 'no-store').send(body);
  });
}
