// DESIGN §8 "ingest", the database half: points/s through commitBatch beside a raw
// COPY of the same points into the same table, in the same run. Creates and drops
// its own database. Usage: npx tsx bench/ingest-store.ts [--quick] [--no-rollups] [--url postgres://…]
// --no-rollups drops the chart summary table (services/metric-rollups.ts) first, to
// see what keeping it costs.
import os from 'node:os';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import postgres from 'postgres';
import { createMetricsStore, claimRun, type MetricPointInput } from '../activities/metrics-store.js';
import { openDatabase, type Database } from '../db/client.js';
import { runMigrations } from '../db/migrate.js';
import { machines, processes, runs, templates } from '../db/schema.js';

const quick = process.argv.includes('--quick');
const urlFlag = process.argv.indexOf('--url');
const adminUrl = (urlFlag > 0 && process.argv[urlFlag + 1]) || process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const SERIES = ['lr', 'loss', 'test_accuracy'];
const TOTAL_POINTS = quick ? 300_000 : 3_000_000;
const BATCH_POINTS = 20_000;
const ROUNDS = quick ? 1 : 3;
const withRollups = !process.argv.includes('--no-rollups');

function makePoints(total: number): MetricPointInput[] {
  const points: MetricPointInput[] = [];
  for (let step = 0; points.length < total; step++) {
    for (const series of SERIES) points.push({ series, step, value: Math.sin(step / 1000) * Math.exp(-step / 1e6) + Math.random() * 1e-3 });
  }
  return points.slice(0, total);
}

async function createRun(database: Database, label: string): Promise<number> {
  const [machine] = await database.db.insert(machines).values({ name: `bench-${label}`, address: '127.0.0.1' }).returning();
  const [template] = await database.db.insert(templates).values({ name: `bench-${label}`, command: 'true' }).returning();
  const [proc] = await database.db.insert(processes).values({ templateId: template!.id, machineId: machine!.id }).returning();
  const [run] = await database.db
    .insert(runs)
    .values({ processId: proc!.id, number: 1, templateSnapshot: {}, machineId: machine!.id })
    .returning();
  return run!.id;
}

async function measureStore(database: Database, points: MetricPointInput[], label: string): Promise<number> {
  const runId = await createRun(database, label);
  const store = createMetricsStore(database.db, database.sql);
  await claimRun(database.db, runId, 'bench');
  const started = performance.now();
  let offset = 0;
  for (let i = 0; i < points.length; i += BATCH_POINTS) {
    const batch = points.slice(i, i + BATCH_POINTS);
    const last = batch[batch.length - 1]!;
    const result = await store.commitBatch({
      runId,
      ownerAttempt: 'bench',
      fromOffset: offset,
      toOffset: offset + batch.length * 40,
      points: batch,
      progress: { step: last.step },
      malformed: 0,
      oversized: 0,
    });
    if (!result.committed) throw new Error(`batch refused: ${result.reason}`);
    offset = result.committedOffset;
  }
  return points.length / ((performance.now() - started) / 1000);
}

// The series rows exist first, as they would for any COPY of points.
async function measureCopy(database: Database, points: MetricPointInput[], label: string): Promise<number> {
  const runId = await createRun(database, label);
  const rows = await database.sql<{ id: number; name: string }[]>`
    insert into metric_series (run_id, name) select ${runId}, unnest(${SERIES}::text[]) returning id, name`;
  const ids = new Map(rows.map((r) => [r.name, r.id]));
  const started = performance.now();
  const writable = await database.sql`copy metric_points (series_id, step, value) from stdin`.writable();
  await pipeline(Readable.from(copyChunks(points, ids)), writable);
  return points.length / ((performance.now() - started) / 1000);
}

function* copyChunks(points: MetricPointInput[], ids: Map<string, number>): Generator<string> {
  for (let i = 0; i < points.length; i += BATCH_POINTS) {
    let chunk = '';
    for (let j = i; j < Math.min(points.length, i + BATCH_POINTS); j++) {
      const p = points[j]!;
      chunk += `${ids.get(p.series)}\t${p.step}\t${p.value}\n`;
    }
    yield chunk;
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (x: number): string => Math.round(x).toLocaleString('en-US');

async function main(): Promise<void> {
  const name = `trainyard_bench_ingest_${process.pid}_${Date.now()}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const database = openDatabase(url.toString(), { applicationName: 'bench-ingest' });
  try {
    await runMigrations(database);
    if (!withRollups) await database.sql.unsafe('drop table metric_rollups');
    const points = makePoints(TOTAL_POINTS);
    // Warm-up: plans, caches, the JIT of both paths.
    await measureStore(database, points.slice(0, 60_000), 'warm-store');
    await measureCopy(database, points.slice(0, 60_000), 'warm-copy');
    const store: number[] = [];
    const copy: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      // Each measurement starts from an empty table with the same indexes; the order alternates.
      for (const which of round % 2 === 0 ? ['copy', 'store'] : ['store', 'copy']) {
        await database.sql.unsafe(withRollups ? 'truncate metric_points, metric_rollups' : 'truncate metric_points');
        await database.sql`checkpoint`;
        if (which === 'copy') copy.push(await measureCopy(database, points, `copy-${round}`));
        else store.push(await measureStore(database, points, `store-${round}`));
      }
    }
    const s = median(store);
    const c = median(copy);
    console.log(`cpus: ${os.cpus().length}; points per measurement: ${fmt(TOTAL_POINTS)} in batches of ${fmt(BATCH_POINTS)}; rounds: ${ROUNDS}; rollups: ${withRollups ? 'kept' : 'absent'}`);
    console.log(`commitBatch: ${fmt(s)} points/s (rounds: ${store.map(fmt).join(', ')})`);
    console.log(`raw COPY:    ${fmt(c)} points/s (rounds: ${copy.map(fmt).join(', ')})`);
    console.log(`ratio: ${((100 * s) / c).toFixed(1)}% of COPY (target ≥ 50%, and ≥ 200,000 points/s)`);
  } finally {
    await database.close();
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
  }
}

await main();
