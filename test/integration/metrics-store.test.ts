// Run metrics against the real PostgreSQL: every point stored exactly once across
// competing attempts, rewrites replacing values, non-finite values kept, and the
// chart query's budget and spikes — with and without the rollup table.
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { dataErrorOf } from '../../metrics/data-errors.js';
import {
  claimRun,
  createMetricsStore,
  readCommittedOffset,
  type MetricPointInput,
  type MetricsStore,
} from '../../metrics/store.js';
import { openDatabase, type Database } from '../../db/client.js';
import { machines, processes, runs, templates } from '../../db/schema.js';
import { ROLLUP_LEVELS } from '../../metrics/rollups.js';
import { listSeries, queryMetrics } from '../../metrics/query.js';

function openTestDatabase(): { database: Database; drop(): Promise<void> } {
  const database = openDatabase(inject('databaseUrl'), { applicationName: 'test-metrics' });
  return { database, drop: () => database.close() };
}

let fixtures = 0;
async function createRun(database: Database): Promise<number> {
  const label = `metrics-${process.pid}-${++fixtures}`;
  const [machine] = await database.db.insert(machines).values({ name: label, address: '127.0.0.1' }).returning();
  const [template] = await database.db.insert(templates).values({ name: label, command: 'true' }).returning();
  const [proc] = await database.db
    .insert(processes)
    .values({ templateId: template!.id, machineId: machine!.id })
    .returning();
  const [run] = await database.db
    .insert(runs)
    .values({ processId: proc!.id, number: 1, templateSnapshot: {}, machineId: machine!.id })
    .returning();
  return run!.id;
}

async function storedPoints(database: Database, runId: number, series: string): Promise<[number, number][]> {
  const rows = await database.sql<{ step: string; value: number }[]>`
    select p.step, p.value from metric_points p join metric_series s on s.id = p.series_id
    where s.run_id = ${runId} and s.name = ${series} order by p.step`;
  return rows.map((r) => [Number(r.step), r.value]);
}

const batch = (
  runId: number,
  ownerAttempt: string,
  fromOffset: number,
  toOffset: number,
  points: MetricPointInput[],
) => ({
  runId,
  ownerAttempt,
  fromOffset,
  toOffset,
  points,
  progress: null,
  malformed: 0,
  oversized: 0,
});

{
  describe('metrics', () => {
    let database: Database;
    let drop: () => Promise<void>;
    let store: MetricsStore;

    beforeAll(async () => {
      ({ database, drop } = openTestDatabase());
      store = createMetricsStore(database.db, database.sql);
    });
    afterAll(async () => drop?.());

    it('stores every line exactly once when a newer attempt takes over from a live older one', async () => {
      const runId = await createRun(database);
      // The "file": one point per line, every seventh line malformed; an offset is a line index.
      const lines = Array.from({ length: 100 }, (_, i) =>
        i % 7 === 6 ? null : { series: 'loss', step: i, value: 1 / (i + 1) },
      );
      const readBatch = (from: number) => {
        const to = Math.min(lines.length, from + 10);
        const slice = lines.slice(from, to);
        const points = slice.filter((p): p is MetricPointInput => p !== null);
        return { ...batch(runId, '', from, to, points), malformed: slice.length - points.length };
      };

      const a = await claimRun(database.db, runId, 'attempt-1');
      expect(a).toEqual({ committedOffset: 0, previousOwner: null });
      let offsetA = a.committedOffset;
      for (let i = 0; i < 3; i++) {
        const result = await store.commitBatch({ ...readBatch(offsetA), ownerAttempt: 'attempt-1' });
        expect(result).toEqual({ committed: true, committedOffset: offsetA + 10 });
        offsetA = result.committedOffset;
      }

      // The retry claims the run while attempt 1 is still reading.
      const b = await claimRun(database.db, runId, 'attempt-2');
      expect(b).toEqual({ committedOffset: 30, previousOwner: 'attempt-1' });
      const stale = await store.commitBatch({ ...readBatch(offsetA), ownerAttempt: 'attempt-1' });
      expect(stale).toEqual({ committed: false, reason: 'fenced', committedOffset: 30 });

      let offsetB = b.committedOffset;
      while (offsetB < lines.length) {
        const result = await store.commitBatch({ ...readBatch(offsetB), ownerAttempt: 'attempt-2' });
        expect(result.committed).toBe(true);
        offsetB = result.committedOffset;
      }
      expect(await store.commitBatch({ ...readBatch(90), ownerAttempt: 'attempt-1' })).toMatchObject({
        committed: false,
        reason: 'fenced',
      });

      const expected = lines.flatMap((p) => (p ? [[p.step, p.value]] : []));
      expect(await storedPoints(database, runId, 'loss')).toEqual(expected);
      const [run] = await database.db.select().from(runs).where(eq(runs.id, runId));
      expect(run).toMatchObject({
        metricsOffset: 100,
        malformedLines: lines.filter((p) => p === null).length,
        ownerAttempt: 'attempt-2',
      });
      expect(await readCommittedOffset(database.db, runId)).toBe(100);
    });

    it('refuses a batch from an offset that has moved on, also when two readers race', async () => {
      const runId = await createRun(database);
      await claimRun(database.db, runId, 'attempt-1');
      const points = [{ series: 'loss', step: 1, value: 0.5 }];
      const raced = await Promise.all([
        store.commitBatch({ ...batch(runId, 'attempt-1', 0, 40, points), malformed: 1 }),
        store.commitBatch({ ...batch(runId, 'attempt-1', 0, 40, points), malformed: 1 }),
      ]);
      expect(raced.map((r) => r.committed).sort()).toEqual([false, true]);
      expect(raced.find((r) => !r.committed)).toEqual({
        committed: false,
        reason: 'offset_moved',
        committedOffset: 40,
      });

      const again = await store.commitBatch({ ...batch(runId, 'attempt-1', 0, 40, points), malformed: 1 });
      expect(again).toEqual({ committed: false, reason: 'offset_moved', committedOffset: 40 });
      const [run] = await database.db.select().from(runs).where(eq(runs.id, runId));
      expect(run).toMatchObject({ metricsOffset: 40, malformedLines: 1 });
      expect(await storedPoints(database, runId, 'loss')).toEqual([[1, 0.5]]);
    });

    it('fences every attempt out of a run that is gone, and claiming it fails', async () => {
      const result = await store.commitBatch(
        batch(2_000_000_000, 'attempt-1', 0, 10, [{ series: 'x', step: 1, value: 1 }]),
      );
      expect(result).toEqual({ committed: false, reason: 'fenced', committedOffset: 0 });
      await expect(claimRun(database.db, 2_000_000_000, 'attempt-1')).rejects.toThrow(/does not exist/);
    });

    it('replaces a step written again, within a batch and across batches', async () => {
      const runId = await createRun(database);
      await claimRun(database.db, runId, 'a');
      let result = await store.commitBatch(
        batch(runId, 'a', 0, 10, [
          { series: 'loss', step: 1, value: 1 },
          { series: 'loss', step: 2, value: 2 },
          { series: 'lr', step: 2, value: 0.1 },
          { series: 'loss', step: 2, value: 20 },
          { series: 'loss', step: 3, value: 3 },
        ]),
      );
      expect(result.committed).toBe(true);
      // A trainer resumed from a checkpoint at step 2 writes 2, 3 and 4 again, out of order.
      result = await store.commitBatch(
        batch(runId, 'a', 10, 20, [
          { series: 'loss', step: 3, value: 30 },
          { series: 'loss', step: 2, value: 200 },
          { series: 'loss', step: 4, value: 4 },
          { series: 'loss', step: 2, value: 2000 },
        ]),
      );
      expect(result.committed).toBe(true);
      expect(await storedPoints(database, runId, 'loss')).toEqual([
        [1, 1],
        [2, 2000],
        [3, 30],
        [4, 4],
      ]);
      expect(await storedPoints(database, runId, 'lr')).toEqual([[2, 0.1]]);
      expect(await listSeries(database.db, runId)).toEqual(['loss', 'lr']);
    });

    it('keeps NaN, ±Infinity, -0 and extreme values exactly, and odd series names intact', async () => {
      const runId = await createRun(database);
      await claimRun(database.db, runId, 'a');
      const values = [
        Number.NaN,
        Infinity,
        -Infinity,
        -0,
        5e-324,
        Number.MAX_VALUE,
        -Number.MAX_VALUE,
        0.1 + 0.2,
        1 / 3,
        1e-300,
      ];
      const names = ['loss', 'a,b', 'quote"d', 'back\\slash', 'пробел и {скобки}', 'NULL', ''];
      const points = names.flatMap((series) => values.map((value, step) => ({ series, step, value })));
      expect((await store.commitBatch(batch(runId, 'a', 0, 1, points))).committed).toBe(true);
      for (const series of names) {
        const stored = await storedPoints(database, runId, series);
        expect(stored.map(([, v]) => v)).toEqual(values); // toEqual tells -0 from 0 and matches NaN
      }
      const { series } = await queryMetrics(database.db, database.sql, { runId, names: ['loss'], maxPoints: 100 });
      expect(series.loss!.map(([, v]) => v)).toEqual(values);
    });

    it('refuses a batch whose series name text cannot hold before it reaches the database, and such errors are told deterministic', async () => {
      const runId = await createRun(database);
      await claimRun(database.db, runId, 'a');
      for (const series of ['lo\u0000ss', 'x\uD800']) {
        const error = await store.commitBatch(batch(runId, 'a', 0, 10, [{ series, step: 1, value: 1 }])).then(
          () => null,
          (e: unknown) => e,
        );
        expect(dataErrorOf(error)?.code, JSON.stringify(series)).toBe('invalid-batch');
      }
      expect(await readCommittedOffset(database.db, runId)).toBe(0);
      // What the real driver and drizzle throw for a NUL in text: class 22, found under drizzle's wrapper.
      const viaDriver = await database.sql`select ${'a\u0000b'}::text`.then(
        () => null,
        (e: unknown) => e,
      );
      expect(dataErrorOf(viaDriver)?.code).toBe('22021');
      const viaDrizzle = await database.db
        .update(runs)
        .set({ stdoutTail: 'a\u0000b' })
        .where(eq(runs.id, runId))
        .then(
          () => null,
          (e: unknown) => e,
        );
      expect(dataErrorOf(viaDrizzle)).toMatchObject({ code: '22021' });
      expect(dataErrorOf(viaDrizzle)?.message).not.toContain('\u0000');
      const viaJsonb = await database.sql`select ${'{"a":"\\u0000"}'}::jsonb`.then(
        () => null,
        (e: unknown) => e,
      );
      expect(dataErrorOf(viaJsonb)?.code).toBe('22P05');
    });

    it('adds up the skipped-line counters and keeps progress and ETA as the batches say', async () => {
      const runId = await createRun(database);
      await claimRun(database.db, runId, 'a');
      const read = async () => (await database.db.select().from(runs).where(eq(runs.id, runId)))[0]!;
      await store.commitBatch({
        ...batch(runId, 'a', 0, 100, [{ series: 'loss', step: 10, value: 1 }]),
        progress: { step: 10, totalSteps: 1000, epoch: 0.5 },
        malformed: 2,
        oversized: 1,
        etaState: { rate: 3.5 },
        etaSeconds: 290.4,
      });
      expect(await read()).toMatchObject({
        malformedLines: 2,
        oversizedLines: 1,
        step: 10,
        totalSteps: 1000,
        epoch: 0.5,
        etaState: { rate: 3.5 },
        etaSeconds: 290,
      });
      // No progress and no ETA fields: all kept; counters add.
      await store.commitBatch({ ...batch(runId, 'a', 100, 150, []), malformed: 3, oversized: 4 });
      expect(await read()).toMatchObject({
        metricsOffset: 150,
        malformedLines: 5,
        oversizedLines: 5,
        step: 10,
        totalSteps: 1000,
        etaState: { rate: 3.5 },
        etaSeconds: 290,
      });
      // A step without total_steps keeps the known total; null clears the ETA.
      await store.commitBatch({
        ...batch(runId, 'a', 150, 200, []),
        progress: { step: 20 },
        etaState: null,
        etaSeconds: null,
      });
      expect(await read()).toMatchObject({ step: 20, totalSteps: 1000, epoch: 0.5, etaState: null, etaSeconds: null });
    });

    describe('the chart query', () => {
      let runId: number;
      const total = 200_000;
      const spikeStep = 123_457;
      const nanStep = 150_001;

      beforeAll(async () => {
        runId = await createRun(database);
        await claimRun(database.db, runId, 'a');
        let offset = 0;
        for (let from = 0; from < total; from += 20_000) {
          const points: MetricPointInput[] = [];
          for (let step = from; step < from + 20_000; step++) {
            points.push({
              series: 'loss',
              step,
              value: step === spikeStep ? 1e6 : step === nanStep ? Number.NaN : 1 + Math.sin(step / 5000),
            });
          }
          for (let step = from; step < from + 20_000; step += 500)
            points.push({ series: 'test_accuracy', step, value: step / total });
          const result = await store.commitBatch(batch(runId, 'a', offset, offset + points.length, points));
          expect(result.committed).toBe(true);
          offset = result.committedOffset;
        }
      });

      it('returns at most maxPoints per series with the spike, the NaN and both ends', async () => {
        const started = performance.now();
        const { series } = await queryMetrics(database.db, database.sql, {
          runId,
          names: ['loss', 'test_accuracy', 'lr'],
          maxPoints: 500,
        });
        const elapsed = performance.now() - started;
        const loss = series.loss!;
        expect(loss.length).toBeLessThanOrEqual(500);
        expect(loss.length).toBeGreaterThan(400);
        expect(loss).toContainEqual([spikeStep, 1e6]);
        expect(loss).toContainEqual([nanStep, Number.NaN]);
        expect(loss[0]).toEqual([0, 1]);
        expect(loss.at(-1)![0]).toBe(total - 1);
        expect(loss.map(([s]) => s)).toEqual([...loss.map(([s]) => s)].sort((a, b) => a - b));
        expect(Math.max(...loss.filter(([, v]) => Number.isFinite(v) && v < 1e6).map(([, v]) => v))).toBeCloseTo(2, 3);
        // 400 points fit the budget: all of them, untouched; an unknown series is empty.
        expect(series.test_accuracy).toEqual(await storedPoints(database, runId, 'test_accuracy'));
        expect(series.lr).toEqual([]);
        expect(elapsed).toBeLessThan(1000);
      });

      it('keeps every kind of non-finite value when they crowd the budget', async () => {
        const crowdRun = await createRun(database);
        await claimRun(database.db, crowdRun, 'a');
        const kinds = [Number.NaN, Infinity, -Infinity, 1, -1];
        const points = Array.from({ length: 5000 }, (_, step) => ({ series: 'loss', step, value: kinds[step % 5]! }));
        await store.commitBatch(batch(crowdRun, 'a', 0, 1, points));
        const { series } = await queryMetrics(database.db, database.sql, { runId: crowdRun, maxPoints: 20 });
        const loss = series.loss!;
        expect(loss.length).toBeLessThanOrEqual(20);
        for (const kind of kinds) expect(loss.some(([, v]) => Object.is(v, kind))).toBe(true);
      });

      it('forgets a spike that a rewrite replaced', async () => {
        const before = await queryMetrics(database.db, database.sql, { runId, names: ['loss'], maxPoints: 500 });
        expect(before.series.loss).toContainEqual([spikeStep, 1e6]);
        const offset = await readCommittedOffset(database.db, runId);
        await store.commitBatch(
          batch(runId, 'a', offset, offset + 1, [{ series: 'loss', step: spikeStep, value: 1.5 }]),
        );
        const after = await queryMetrics(database.db, database.sql, { runId, names: ['loss'], maxPoints: 500 });
        expect(after.series.loss!.some(([, v]) => v === 1e6)).toBe(false);
        expect(after.series.loss).toContainEqual([nanStep, Number.NaN]);
      });

      it('keeps the rollups equal to a recomputation from the points', async () => {
        // Only this file's series: other files share the database and some insert points
        // directly (fixtures for pages), which no commit summarised.
        const drift = await database.sql`
          with mine as (
            select s.id from metric_series s join runs r on r.id = s.run_id join machines m on m.id = r.machine_id
            where m.name like ${`metrics-${process.pid}-%`}),
          fresh as (
            select p.series_id, l.level, p.step >> l.level as bucket, count(*)::int4 as count,
              (min(array[p.value, p.step::float8]) filter (where p.value > '-Infinity' and p.value < 'Infinity'))[2]::int8 as min_step,
              (max(array[p.value, -p.step::float8]) filter (where p.value > '-Infinity' and p.value < 'Infinity'))[1] as max_value,
              min(p.step) filter (where p.value = 'NaN') as nan_step
            from metric_points p cross join unnest(${ROLLUP_LEVELS}::int2[]) as l(level)
            where p.series_id in (select id from mine)
            group by 1, 2, 3)
          select * from fresh full join (select * from metric_rollups where series_id in (select id from mine)) r using (series_id, level, bucket)
          where r.count is distinct from fresh.count or r.min_step is distinct from fresh.min_step
            or r.max_value is distinct from fresh.max_value or r.nan_step is distinct from fresh.nan_step
          limit 5`;
        expect(drift).toEqual([]);
        const [checked] = await database.sql`
          select count(*)::int as n from metric_rollups r join metric_series s on s.id = r.series_id
          join runs ru on ru.id = s.run_id join machines m on m.id = ru.machine_id where m.name like ${`metrics-${process.pid}-%`}`;
        expect(checked!.n).toBeGreaterThan(0);
      });
    });
  });
}
