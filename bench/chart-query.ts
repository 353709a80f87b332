// DESIGN §8 "chart", the database half: queryMetrics on a run with 1 000 000 points
// in each of three series (maxPoints 2 000), beside the baseline of reading every
// point, in the same run. Creates and drops its own database.
// Usage: npx tsx bench/chart-query.ts [--quick] [--url postgres://…]
// --no-rollups leaves out the proposed summary table (metrics/rollups.ts),
// so the query summarises the points themselves.
import os from 'node:os';
import postgres from 'postgres';
import { claimRun, createMetricsStore, type MetricPointInput } from '../metrics/store.js';
import { openDatabase } from '../db/client.js';
import { runMigrations } from '../db/migrate.js';
import { machines, processes, runs, templates } from '../db/schema.js';
import { queryMetrics } from '../metrics/query.js';

const quick = process.argv.includes('--quick');
const withRollups = !process.argv.includes('--no-rollups');
const urlFlag = process.argv.indexOf('--url');
const adminUrl =
  (urlFlag > 0 && process.argv[urlFlag + 1]) ||
  process.env.BENCH_DATABASE_URL ||
  'postgres://postgres@127.0.0.1:5432/postgres';
const POINTS_PER_SERIES = quick ? 200_000 : 1_000_000;
const QUERIES = quick ? 10 : 40;
const BASELINES = quick ? 2 : 5;
const MAX_POINTS = 2_000;
const SPIKE_STEP = Math.floor(POINTS_PER_SERIES * 0.654321);

const percentile = (xs: number[], p: number): number =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;

async function main(): Promise<void> {
  const name = `trainyard_bench_chart_${process.pid}_${Date.now()}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const database = openDatabase(url.toString(), { applicationName: 'bench-chart' });
  try {
    await runMigrations(database);
    // --no-rollups: the chart without its summary table, to see what the rollups buy.
    if (!withRollups) await database.sql.unsafe('drop table metric_rollups');
    const [machine] = await database.db.insert(machines).values({ name: 'bench', address: '127.0.0.1' }).returning();
    const [template] = await database.db.insert(templates).values({ name: 'bench', command: 'true' }).returning();
    const [proc] = await database.db
      .insert(processes)
      .values({ templateId: template!.id, machineId: machine!.id })
      .returning();
    const [run] = await database.db
      .insert(runs)
      .values({ processId: proc!.id, number: 1, templateSnapshot: {}, machineId: machine!.id })
      .returning();
    const runId = run!.id;

    const store = createMetricsStore(database.db, database.sql);
    await claimRun(database.db, runId, 'bench');
    const loadStarted = performance.now();
    let offset = 0;
    for (let from = 0; from < POINTS_PER_SERIES; from += 10_000) {
      const points: MetricPointInput[] = [];
      for (let step = from; step < Math.min(POINTS_PER_SERIES, from + 10_000); step++) {
        points.push({ series: 'lr', step, value: 1e-3 * Math.cos(step / 1e5) });
        points.push({
          series: 'loss',
          step,
          value: step === SPIKE_STEP ? 1e6 : 2 * Math.exp(-step / 2e5) + Math.random() * 0.1,
        });
        points.push({ series: 'test_accuracy', step, value: 1 - Math.exp(-step / 2e5) });
      }
      const result = await store.commitBatch({
        runId,
        ownerAttempt: 'bench',
        fromOffset: offset,
        toOffset: offset + points.length,
        points,
        progress: null,
        malformed: 0,
        oversized: 0,
      });
      if (!result.committed) throw new Error(`batch refused: ${result.reason}`);
      offset = result.committedOffset;
    }
    const loadSeconds = (performance.now() - loadStarted) / 1000;
    await database.sql`vacuum analyze`;

    const names = ['lr', 'loss', 'test_accuracy'];
    const chart: number[] = [];
    let returned = 0;
    let spikeKept = true;
    for (let i = 0; i < QUERIES + 3; i++) {
      const started = performance.now();
      const { series } = await queryMetrics(database.db, database.sql, { runId, names, maxPoints: MAX_POINTS });
      if (i >= 3) chart.push(performance.now() - started); // the first three warm the plans
      returned = Math.max(...names.map((n) => series[n]!.length));
      spikeKept &&= series.loss!.some(([step, value]) => step === SPIKE_STEP && value === 1e6);
    }
    const baseline: number[] = [];
    for (let i = 0; i < BASELINES; i++) {
      const started = performance.now();
      await Promise.all(
        names.map(
          (n) => database.sql`
            select p.step, p.value from metric_points p join metric_series s on s.id = p.series_id
            where s.run_id = ${runId} and s.name = ${n} order by p.step`,
        ),
      );
      baseline.push(performance.now() - started);
    }
    const ms = (x: number): string => `${x.toFixed(1)} ms`;
    console.log(
      `cpus: ${os.cpus().length}; ${POINTS_PER_SERIES.toLocaleString('en-US')} points × 3 series (loaded through commitBatch at ${Math.round((3 * POINTS_PER_SERIES) / loadSeconds).toLocaleString('en-US')} points/s); rollups: ${withRollups ? 'kept' : 'absent'}`,
    );
    console.log(
      `queryMetrics maxPoints ${MAX_POINTS}: p50 ${ms(percentile(chart, 0.5))}, p95 ${ms(percentile(chart, 0.95))} over ${QUERIES}; at most ${returned} points per series; spike kept: ${spikeKept}`,
    );
    console.log(
      `baseline, every point: p50 ${ms(percentile(baseline, 0.5))}, p95 ${ms(percentile(baseline, 0.95))} over ${BASELINES}`,
    );
    console.log(`target: p95 < 150 ms with ≤ ${MAX_POINTS} points per series and the spike kept`);
  } finally {
    await database.close();
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
  }
}

await main();
