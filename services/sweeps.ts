// Processes made in bulk: several machines at once, or a sweep over a template's params
// (a grid, or seeded random samples). The rows are made in one transaction and their
// workflows started a few at a time; with "start now" each workflow begins queued, so
// making and starting is one call per process. The call returns when the workflows are
// started, not when any run begins.
import { and, asc, eq, inArray, sql } from 'drizzle-orm';
import { machines, processes, sweeps, templates } from '../db/schema.js';
import {
  defaultName,
  differingKeys,
  distributionProblem,
  expandGrid,
  gridSize,
  sampleRandom,
  spread,
  type Params,
  type RandomSpec,
} from '../domain/sweep.js';
import { invalid, notFound, ServiceError, THINGS } from './errors.js';
import { PROCESS_LIMITS, type ProcessesInput, type SweepInput } from './inputs.js';
import { eachLimited } from '../lib/each-limited.js';
import { installationOf, NEW_WORKFLOW_ID } from './installation.js';
import { startProcessWorkflow } from './process-workflow.js';
import { getProcess, processQuery, toView, type ProcessDeps, type ProcessView } from './processes.js';
import { validParams } from './templates.js';
import { text } from './validate.js';

/** Workflows started (and started runs asked for) at once: enough to be quick, few enough to spare Temporal. */
const CONCURRENCY = 8;

type Template = typeof templates.$inferSelect;

interface Planned {
  machineId: number;
  params: Params;
  name: string;
}

/** A name as given (trimmed), or null when none was: then the default applies. */
export function validProcessName(value: unknown, field = 'name'): string | null {
  if (value === undefined || value === null) return null;
  const name = text(field, value, { max: PROCESS_LIMITS.name }).trim();
  return name === '' ? null : name;
}

async function templateOf(deps: Pick<ProcessDeps, 'db'>, templateId: number): Promise<Template> {
  const [template] = await deps.db.select().from(templates).where(eq(templates.id, templateId));
  if (!template) throw invalid('templateId', notFound(THINGS.template, templateId).text);
  return template;
}

async function checkMachines(deps: Pick<ProcessDeps, 'db'>, ids: number[]): Promise<number[]> {
  const unique = [...new Set(ids)];
  if (unique.length === 0)
    throw invalid('machineIds', { en: 'machineIds names at least one machine.', ru: 'Выберите хотя бы одну машину.' });
  const found = await deps.db.select({ id: machines.id }).from(machines).where(inArray(machines.id, unique));
  const missing = unique.filter((id) => !found.some((row) => row.id === id));
  if (missing.length > 0) throw invalid('machineIds', notFound(THINGS.machine, missing[0]).text);
  return unique;
}

function checkKeys(field: string, template: Template, keys: string[]): void {
  const unknown = keys.find((key) => !Object.prototype.hasOwnProperty.call(template.params, key));
  if (unknown !== undefined)
    throw invalid(field, {
      en: `${field} names ${JSON.stringify(unknown)}, which is not one of the template's params.`,
      ru: `${field}: ${JSON.stringify(unknown)} нет среди гиперпараметров шаблона.`,
    });
}

function checkCount(field: string, count: number): void {
  if (count > PROCESS_LIMITS.perRequest)
    throw invalid(field, {
      en: `One request makes at most ${PROCESS_LIMITS.perRequest} processes; this one ${count}.`,
      ru: `Один запрос создаёт не больше ${PROCESS_LIMITS.perRequest} процессов; в этом их ${count}.`,
    });
}

/** Makes the rows in one transaction, starts their workflows, then (when asked) starts them. */
async function createPlanned(
  deps: ProcessDeps,
  template: Template,
  planned: Planned[],
  options: { start: boolean; sweep?: { name: string; spec: unknown } },
): Promise<{ sweepId: number | null; items: ProcessView[] }> {
  const { sweepId, rows } = await deps.db.transaction(async (tx) => {
    let sweepId: number | null = null;
    if (options.sweep) {
      const [sweep] = await tx
        .insert(sweeps)
        .values({ templateId: template.id, name: options.sweep.name, spec: options.sweep.spec })
        .returning({ id: sweeps.id });
      sweepId = sweep!.id;
    }
    const rows = await tx
      .insert(processes)
      // Made started: the row says queued at once, as the workflow's first status (version 1) does.
      .values(
        planned.map((p) => ({
          templateId: template.id,
          sweepId,
          workflowId: NEW_WORKFLOW_ID,
          ...p,
          ...(options.start ? { status: 'queued', statusVersion: 1 } : {}),
        })),
      )
      .returning({
        id: processes.id,
        machineId: processes.machineId,
        name: processes.name,
        workflowId: processes.workflowId,
      });
    return { sweepId, rows };
  });
  const machineNames = new Map(
    (await deps.db.select({ id: machines.id, name: machines.name }).from(machines)).map((m) => [m.id, m.name]),
  );
  const installation = await installationOf(deps.db);
  const failed: number[] = [];
  let firstError: unknown;
  await eachLimited(rows, CONCURRENCY, async (row) => {
    try {
      await startProcessWorkflow(
        deps.client,
        {
          processId: row.id,
          workflowId: row.workflowId,
          installation,
          template,
          machine: { id: row.machineId, name: machineNames.get(row.machineId) ?? '' },
          name: row.name,
        },
        undefined,
        { start: options.start },
      );
    } catch (error) {
      failed.push(row.id);
      firstError ??= error;
    }
  });
  if (failed.length > 0) {
    // Nothing half-made: without its workflow a process would be a dead row.
    await deps.db.delete(processes).where(inArray(processes.id, failed));
    throw new ServiceError('unavailable', {
      en:
        `Could not start ${failed.length} of ${rows.length} workflows (${(firstError as Error).message}); ` +
        `the ${rows.length - failed.length} others were made.`,
      ru:
        `Не удалось запустить ${failed.length} из ${rows.length} рабочих процессов Temporal ` +
        `(${(firstError as Error).message}); остальные ${rows.length - failed.length} созданы.`,
    });
  }
  const items = await Promise.all(rows.map((row) => getProcess(deps, row.id)));
  return { sweepId, items };
}

/** Several machines at once, perMachine processes on each, all with the same params. */
export async function createProcesses(
  deps: ProcessDeps,
  input: ProcessesInput & { machineIds: number[] },
): Promise<ProcessView[]> {
  const template = await templateOf(deps, input.templateId);
  const params = validParams(input.params);
  checkKeys('params', template, Object.keys(params));
  const name = validProcessName(input.name) ?? defaultName(template.name, template.params, params);
  const perMachine = input.perMachine ?? 1;
  checkCount('perMachine', input.machineIds.length * perMachine);
  const machineIds = await checkMachines(deps, input.machineIds);
  const planned = spread(machineIds.length * perMachine, machineIds, perMachine).map((machineId) => ({
    machineId,
    params,
    name,
  }));
  return (await createPlanned(deps, template, planned, { start: input.start === true })).items;
}

function sweepPoints(template: Template, input: SweepInput): Params[] {
  if ((input.grid === undefined) === (input.random === undefined))
    throw invalid('grid', {
      en: 'A sweep has exactly one of grid and random.',
      ru: 'Перебор задаёт ровно одно из grid и random.',
    });
  if (input.grid !== undefined) {
    const grid = input.grid;
    checkKeys('grid', template, Object.keys(grid));
    for (const [key, values] of Object.entries(grid)) {
      if (!Array.isArray(values) || values.length === 0)
        throw invalid('grid', { en: `grid.${key} is a non-empty list.`, ru: `grid.${key}: непустой список.` });
      validParams({ [key]: values }, 'grid');
    }
    if (Object.keys(grid).length === 0)
      throw invalid('grid', { en: 'grid names at least one param.', ru: 'grid называет хотя бы один гиперпараметр.' });
    checkCount('grid', gridSize(grid));
    return expandGrid(grid);
  }
  const random = input.random as RandomSpec;
  if (!Number.isInteger(random.n) || random.n <= 0)
    throw invalid('random', { en: 'random.n is a whole number above 0.', ru: 'random.n — целое число больше 0.' });
  checkCount('random', random.n);
  checkKeys('random', template, Object.keys(random.space));
  for (const [key, distribution] of Object.entries(random.space)) {
    const problem = distributionProblem(distribution);
    if (problem)
      throw invalid('random', { en: `random.space.${key} ${problem}.`, ru: `random.space.${key}: ${problem}.` });
  }
  validParams(random.space, 'random');
  return sampleRandom(random);
}

export interface SweepView {
  id: number;
  templateId: number;
  name: string;
  processes: ProcessView[];
}

/** A sweep of `template`: one process per point, spread over the machines round robin. */
export async function createSweep(deps: ProcessDeps, templateId: number, input: SweepInput): Promise<SweepView> {
  const template = await templateOf(deps, templateId);
  const points = sweepPoints(template, input);
  const machineIds = await checkMachines(deps, input.machineIds);
  const keys = Object.keys(input.grid ?? input.random?.space ?? {});
  const name = validProcessName(input.name) ?? `${template.name}: ${keys.join(' × ')}`;
  const targets = spread(points.length, machineIds);
  const planned = points.map((point, i) => {
    const params = { ...point };
    return { machineId: targets[i]!, params, name: defaultName(template.name, template.params, params) };
  });
  const spec = input.grid !== undefined ? { grid: input.grid } : { random: input.random };
  const made = await createPlanned(deps, template, planned, {
    start: input.start === true,
    sweep: { name, spec: { ...spec, machineIds } },
  });
  return { id: made.sweepId!, templateId: template.id, name, processes: made.items };
}

export async function renameProcess(deps: ProcessDeps, id: number, value: unknown): Promise<ProcessView> {
  const current = await getProcess(deps, id);
  const name = validProcessName(value);
  // An empty name goes back to the default, which follows the template's name and params.
  await deps.db.update(processes).set({ name, updatedAt: new Date() }).where(eq(processes.id, current.id));
  return getProcess(deps, id);
}

/** The sweep's template, to authorize before reading it. */
export async function sweepTemplate(deps: Pick<ProcessDeps, 'db'>, id: number): Promise<number> {
  const [sweep] = await deps.db.select({ templateId: sweeps.templateId }).from(sweeps).where(eq(sweeps.id, id));
  if (!sweep) throw notFound(THINGS.sweep, id);
  return sweep.templateId;
}

export type SweepProcess = ProcessView & { final: number | null; best: number | null };

/** best is the highest value, or the lowest when the metric is a loss. */
export const lowerIsBetter = (metric: string): boolean => metric.toLowerCase().includes('loss');

/**
 * The sweep with each process's final and best value of `metric` in its latest run. Non-finite values
 * (NaN, infinities) are left out of best; final is the value at the last step, whatever it is.
 */
export async function getSweep(
  deps: Pick<ProcessDeps, 'db'>,
  id: number,
  metric: string,
): Promise<SweepView & { metric: string; differing: string[]; processes: SweepProcess[] }> {
  const [sweep] = await deps.db.select().from(sweeps).where(eq(sweeps.id, id));
  if (!sweep) throw notFound(THINGS.sweep, id);
  const rows = await processQuery(deps.db)
    .where(and(eq(processes.sweepId, id), eq(processes.deleting, false)))
    .orderBy(asc(processes.id));
  const views = rows.map((row) => toView(row));
  const best = lowerIsBetter(metric) ? sql`min(p.value)` : sql`max(p.value)`;
  const values = await deps.db.execute<{ process_id: number; final: number | null; best: number | null }>(sql`
    select r.process_id,
      (select p.value from metric_points p where p.series_id = s.id order by p.step desc limit 1) as final,
      (select ${best} from metric_points p where p.series_id = s.id
         and p.value not in ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8)) as best
    from runs r
    join metric_series s on s.run_id = r.id and s.name = ${metric}
    where r.process_id in (select id from processes where sweep_id = ${id})
      and r.number = (select max(number) from runs r2 where r2.process_id = r.process_id)`);
  const byProcess = new Map([...values].map((v) => [Number(v.process_id), v]));
  const template = rows[0] ? rows[0].templateParams : {};
  const changed = new Set(views.flatMap((view) => differingKeys(template, view.params)));
  // Sorted: stored params (jsonb) keep no order of their own.
  const differing = [...changed].sort();
  return {
    id: sweep.id,
    templateId: sweep.templateId,
    name: sweep.name,
    metric,
    differing,
    processes: views.map((view) => ({
      ...view,
      final: toNumber(byProcess.get(view.id)?.final),
      best: toNumber(byProcess.get(view.id)?.best),
    })),
  };
}

const toNumber = (value: unknown): number | null =>
  value === null || value === undefined ? null : typeof value === 'number' ? value : Number(value);
