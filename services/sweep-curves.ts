// The sweep page's "compare": one metric's curve for each chosen process of a sweep, from
// its latest run, downsampled by the same query as the monitoring chart (spikes kept).
import { desc, eq } from 'drizzle-orm';
import type postgres from 'postgres';
import type { Db } from '../db/client.js';
import { runs } from '../db/schema.js';
import { encodeSeries, type EncodedPoint } from '../metrics/encode.js';
import { queryMetrics } from '../metrics/query.js';
import { invalid, ServiceError } from './errors.js';

/** Curves on one chart at most: more is unreadable, and each costs a query. */
export const MAX_COMPARED = 20;
/** Points per curve, as on the monitoring chart. */
const MAX_POINTS = 2000;

export interface SweepCurve {
  processId: number;
  name: string;
  /** The run the curve is from (the latest); null when the process never ran. */
  run: number | null;
  points: EncodedPoint[];
}

/** `ids` as process ids: whole numbers, each at most once, in the order given. */
export function comparedIds(values: readonly string[]): number[] {
  const ids: number[] = [];
  for (const value of values) {
    if (!/^[1-9]\d{0,11}$/.test(value))
      throw invalid('compare', {
        en: `compare takes process ids; ${JSON.stringify(value)} is not one.`,
        ru: `Для сравнения нужны номера процессов; ${JSON.stringify(value)} — не номер.`,
      });
    const id = Number(value);
    if (!ids.includes(id)) ids.push(id);
  }
  if (ids.length > MAX_COMPARED)
    throw invalid('compare', {
      en: `At most ${MAX_COMPARED} processes can be compared at once.`,
      ru: `Сравнить можно не больше ${MAX_COMPARED} процессов сразу.`,
    });
  return ids;
}

/**
 * The curves of `metric` for the processes `ids` among `members` (the sweep's processes, as
 * getSweep lists them); an id that is not a member answers 404.
 */
export async function sweepCurves(
  deps: { db: Db; sql: postgres.Sql },
  members: ReadonlyArray<{ id: number; name: string }>,
  metric: string,
  ids: readonly number[],
): Promise<SweepCurve[]> {
  const missing = ids.find((id) => !members.some((m) => m.id === id));
  if (missing !== undefined)
    throw new ServiceError('not_found', {
      en: `Process ${missing} is not in this sweep.`,
      ru: `Процесса ${missing} нет в этом переборе.`,
    });
  return Promise.all(
    ids.map(async (id) => {
      const name = members.find((m) => m.id === id)!.name;
      const [latest] = await deps.db
        .select({ id: runs.id, number: runs.number })
        .from(runs)
        .where(eq(runs.processId, id))
        .orderBy(desc(runs.number))
        .limit(1);
      if (!latest) return { processId: id, name, run: null, points: [] };
      const { series } = await queryMetrics(deps.db, deps.sql, {
        runId: latest.id,
        names: [metric],
        maxPoints: MAX_POINTS,
      });
      return { processId: id, name, run: latest.number, points: encodeSeries(series[metric] ?? []) };
    }),
  );
}
