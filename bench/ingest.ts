// DESIGN §8 "ingest": metric points through the real pipeline — a trainer process on
// `local` appends JSON lines, the `trainyard worker` (a child process, as in
// production) tails the file, parses, batches and commits — beside a raw COPY of the
// same points into the same table with the same indexes, in the same run. Also the
// store on its own (commitBatch from this process), to show which half costs what.
// Then the lag: a trainer offering a fixed 50 000 points/s, and for each of its writes
// the time until the line's step is queryable.
// Usage: npm run bench -- ingest [--quick]
//
// A point is one (run, series, step, value); every line carries three series (lr,
// loss, test_accuracy), with full-precision doubles as Python's repr writes them.
// "Queryable" is read off `runs.step`, which the commit of a batch sets in the same
// transaction as its points (metrics/store.ts), polled every 2 ms.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { eq } from 'drizzle-orm';
import { claimRun, createMetricsStore, type MetricPointInput } from '../metrics/store.js';
import type { Database } from '../db/client.js';
import { machines, processes, runs, templates } from '../db/schema.js';
import { act, createProcess, type ProcessDeps } from '../services/processes.js';
import { seed } from '../services/seed.js';
import {
  ADMIN_PASSWORD,
  backendPids,
  count,
  cpuSecondsOf,
  cpuSecondsOfAll,
  createBenchDatabase,
  killTrainersAtCleanup,
  machineCpu,
  ms,
  printTable,
  quick,
  run,
  sleep,
  startTemporal,
  startWorkerChild,
  stats,
  tempDir,
  temporalClient,
  triple,
  waitFor,
  type Row,
} from './support.js';

const SERIES = ['lr', 'loss', 'test_accuracy'] as const;
const LINES = quick ? 100_000 : 1_000_000; // × 3 series: 300 000 / 3 000 000 points
const ROUNDS = quick ? 1 : 2;
const STORE_BATCH = 20_000; // points per commitBatch in the store-only measurement
const LAG_POINTS_PER_S = 50_000;
const LAG_WARMUP_S = 2; // writes before this are left out: the reader is still being started
const LAG_WINDOW_S = quick ? 4 : 20;
const POLL_MS = 2; // while measuring the lag
const FLOOD_POLL_MS = 20; // while measuring points/s: less load on the 2 cores the pipeline runs on
const TARGET_POINTS_PER_S = 200_000;
const TARGET_RATIO = 0.5;
const TARGET_LAG_P95_MS = 1000;

/** The values of a line; shared by the trainer (as source) and the COPY baseline, so both store the same numbers. */
function lineValues(step: number, total: number): [number, number, number] {
  const t = step / total;
  const lr = 1e-3 * (step < total / 20 ? (20 * step) / total : 0.5 * (1 + Math.cos(Math.PI * t)));
  const loss = 2.3 * Math.exp(-4 * t) + 0.05 * Math.abs(Math.sin(step * 12.9898)) + 0.01;
  const accuracy = Math.min(1, 0.1 + 0.9 * (1 - Math.exp(-5 * t)) - 0.02 * Math.abs(Math.cos(step * 78.233)));
  return [lr, loss, accuracy];
}

// The trainer: TRAINYARD_PARAMS {lines, points_per_s}. points_per_s 0 writes as fast as it can
// (in blocks of 8 192 lines); otherwise every 5 ms it writes the lines due by then. Each write
// is stamped (last step written, wall-clock ms) into writes.json in the run directory at the end.
const TRAINER = `import fs from 'node:fs';
import path from 'node:path';
${lineValues.toString()}
const { lines, points_per_s: rate } = JSON.parse(process.env.TRAINYARD_PARAMS);
const fd = fs.openSync(process.env.TRAINYARD_METRICS_FILE, 'a');
const now = () => performance.timeOrigin + performance.now();
const line = (s) => { const [lr, loss, acc] = lineValues(s, lines); return '{"step":' + s + ',"total_steps":' + lines + ',"lr":' + lr + ',"loss":' + loss + ',"test_accuracy":' + acc + '}\\n'; };
const marks = [];
let step = 0;
const writeUpTo = (end) => {
  let block = '';
  for (; step < end; step++) block += line(step);
  fs.writeSync(fd, block);
  marks.push([step - 1, now()]);
};
const firstAt = now();
if (!rate) {
  while (step < lines) writeUpTo(Math.min(lines, step + 8192));
} else {
  const linesPerMs = rate / ${SERIES.length} / 1000;
  while (step < lines) {
    const due = Math.min(lines, Math.floor((now() - firstAt) * linesPerMs) + 1);
    if (due > step) writeUpTo(due);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
fs.closeSync(fd);
fs.writeFileSync(path.join(process.env.TRAINYARD_RUN_DIR, 'writes.json'), JSON.stringify({ firstAt, marks }));
`;

interface Writes {
  firstAt: number;
  marks: [lastStep: number, at: number][];
}

const wallNow = () => performance.timeOrigin + performance.now();

/** A machine, template, process and run made directly in the tables, for the measurements that skip the pipeline. */
let bareRuns = 0;
async function bareRun(database: Database, label: string): Promise<number> {
  const { db } = database;
  label = `${label}-${++bareRuns}`;
  const [machine] = await db
    .insert(machines)
    .values({ name: `bench-${label}`, address: '127.0.0.1', enabled: false })
    .returning();
  const [template] = await db
    .insert(templates)
    .values({ name: `bench-${label}`, command: 'true' })
    .returning();
  const [proc] = await db.insert(processes).values({ templateId: template!.id, machineId: machine!.id }).returning();
  const [row] = await db
    .insert(runs)
    .values({ processId: proc!.id, number: 1, templateSnapshot: {}, machineId: machine!.id })
    .returning();
  return row!.id;
}

function* pointsOf(lines: number): Generator<MetricPointInput[]> {
  let batch: MetricPointInput[] = [];
  for (let step = 0; step < lines; step++) {
    const values = lineValues(step, lines);
    for (let k = 0; k < SERIES.length; k++) batch.push({ series: SERIES[k]!, step, value: values[k]! });
    if (batch.length >= STORE_BATCH) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

/** Raw COPY of every point (series rows made first, as for any COPY of points); points/s. */
async function measureCopy(database: Database): Promise<number> {
  const runId = await bareRun(database, 'copy');
  const rows = await database.sql<{ id: number; name: string }[]>`
    insert into metric_series (run_id, name) select ${runId}, unnest(${SERIES}::text[]) returning id, name`;
  const ids = new Map(rows.map((r) => [r.name, r.id]));
  // The text is made before the clock starts: the baseline is the database's part alone.
  const chunks: string[] = [];
  for (const batch of pointsOf(LINES))
    chunks.push(batch.map((p) => `${ids.get(p.series)}\t${p.step}\t${p.value}\n`).join(''));
  const started = performance.now();
  const writable = await database.sql`copy metric_points (series_id, step, value) from stdin`.writable();
  await pipeline(Readable.from(chunks), writable);
  return (LINES * SERIES.length) / ((performance.now() - started) / 1000);
}

/** commitBatch in this process, batches of STORE_BATCH points made before the clock starts; points/s. */
async function measureStore(database: Database): Promise<number> {
  const runId = await bareRun(database, 'store');
  const store = createMetricsStore(database.db, database.sql);
  await claimRun(database.db, runId, 'bench');
  const batches = [...pointsOf(LINES)];
  const started = performance.now();
  let offset = 0;
  for (const points of batches) {
    const last = points[points.length - 1]!;
    const result = await store.commitBatch({
      runId,
      ownerAttempt: 'bench',
      fromOffset: offset,
      toOffset: offset + points.length * 40,
      points,
      progress: { step: last.step },
      malformed: 0,
      oversized: 0,
    });
    if (!result.committed) throw new Error(`batch refused: ${result.reason}`);
    offset = result.committedOffset;
  }
  return (LINES * SERIES.length) / ((performance.now() - started) / 1000);
}

async function emptyTables(database: Database): Promise<void> {
  await database.sql`truncate metric_points, metric_rollups`;
  await database.sql`checkpoint`;
}

await run('ingest', async () => {
  const [{ url, database }, temporal] = await Promise.all([createBenchDatabase('ingest', { max: 4 }), startTemporal()]);
  const { db, sql } = database;
  await seed(db, { adminPassword: ADMIN_PASSWORD });
  const [local] = await db.select().from(machines).where(eq(machines.name, 'local'));
  const scripts = tempDir('ingest-trainer');
  const trainer = path.join(scripts, 'trainer.mjs');
  fs.writeFileSync(trainer, TRAINER);
  const [template] = await db
    .insert(templates)
    .values({ name: 'bench ingest', command: `exec '${process.execPath}' '${trainer}'`, stopGraceSeconds: 5 })
    .returning();
  const worker = await startWorkerChild({
    databaseUrl: url,
    temporalAddress: temporal.address,
    dataDir: tempDir('ingest-data'),
  });
  killTrainersAtCleanup(database);
  const deps: ProcessDeps = { db, client: (await temporalClient(temporal.address)).client };
  const log = (line: string) => console.error(`ingest: ${line} (${(performance.now() / 1000).toFixed(1)} s)`);

  /**
   * Runs the trainer through the product and watches runs.step; returns the trainer's stamps and the
   * bench's observations.
   */
  async function throughPipeline(lines: number, pointsPerS: number, pollMs: number) {
    const proc = await createProcess(deps, {
      templateId: template!.id,
      machineId: local!.id,
      params: { lines, points_per_s: pointsPerS },
    });
    await act(deps, proc.id, 'start');
    const runRow = await waitFor(
      'the run',
      async () => (await db.select().from(runs).where(eq(runs.processId, proc.id)))[0],
      30_000,
    );
    // Every change of the queryable step, with the wall-clock time it was seen.
    const seen: [step: number, at: number][] = [];
    let last = -1;
    const deadline = Date.now() + 170_000;
    while (last < lines - 1) {
      const [row] = await sql<
        { step: string | null; status: string }[]
      >`select step, status from runs where id = ${runRow.id}`;
      const at = wallNow();
      if (row?.step != null && Number(row.step) > last) {
        last = Number(row.step); // a bigint column: postgres.js gives it as text
        seen.push([last, at]);
      }
      if (row && ['stopped', 'completed', 'failed'].includes(row.status) && last < lines - 1) {
        throw new Error(`the run ended ${row.status} at step ${last}: ${worker.output().slice(-2000)}`);
      }
      if (Date.now() > deadline) throw new Error(`only step ${last} of ${lines - 1} queryable after 170 s`);
      await sleep(pollMs);
    }
    const [done] = await waitFor(
      'the run to end',
      async () => {
        const rows = await db.select().from(runs).where(eq(runs.id, runRow.id));
        return rows[0]?.finishedAt ? rows : null;
      },
      60_000,
      20,
    );
    const writes = JSON.parse(fs.readFileSync(path.join(done!.runDir!, 'writes.json'), 'utf8')) as Writes;
    const counted = await sql<{ n: string }[]>`
      select count(*) as n from metric_points where series_id in (select id from metric_series where run_id = ${runRow.id})`;
    return {
      run: done!,
      writes,
      seen,
      stored: Number(counted[0]!.n),
      fileBytes: fs.statSync(path.join(done!.runDir!, 'metrics.jsonl')).size,
    };
  }

  const points = LINES * SERIES.length;
  /** One end-to-end measurement, as fast as the trainer can write, with the CPU each part used meanwhile. */
  async function endToEnd() {
    const pids = await backendPids(sql);
    const [worker0, pg0, machine0] = [cpuSecondsOf(worker.pid), cpuSecondsOfAll(pids), machineCpu()];
    const flood = await throughPipeline(LINES, 0, FLOOD_POLL_MS);
    const [worker1, pg1, machine1] = [cpuSecondsOf(worker.pid), cpuSecondsOfAll(pids), machineCpu()];
    const seconds = (flood.seen[flood.seen.length - 1]![1] - flood.writes.firstAt) / 1000;
    return {
      rate: points / seconds,
      writeRate: points / ((flood.writes.marks[flood.writes.marks.length - 1]![1] - flood.writes.firstAt) / 1000),
      workerCore: (worker1 - worker0) / seconds,
      pgCore: (pg1 - pg0) / seconds,
      coresBusy: ((machine1.busy - machine0.busy) / (machine1.total - machine0.total)) * os.cpus().length,
      stored: flood.stored,
      status: flood.run.status,
      fileBytes: flood.fileBytes,
    };
  }

  // 1. End to end beside the raw COPY baseline, each from empty tables with the same
  // indexes, alternating which goes first; then the store on its own.
  const copies: number[] = [];
  const ends: Awaited<ReturnType<typeof endToEnd>>[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (const which of round % 2 === 0 ? ['copy', 'e2e'] : ['e2e', 'copy']) {
      await emptyTables(database);
      if (which === 'copy') {
        copies.push(await measureCopy(database));
        log(`raw COPY: ${count(copies[copies.length - 1]!)} points/s`);
      } else {
        ends.push(await endToEnd());
        const e = ends[ends.length - 1]!;
        log(
          `end to end: ${count(e.rate)} points/s (${count(e.stored)} stored of ${count(points)}, the run ${e.status})`,
        );
      }
    }
  }
  await emptyTables(database);
  const storeRate = await measureStore(database);
  log(`commitBatch: ${count(storeRate)} points/s`);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const copyRate = mean(copies);
  const e2eRate = mean(ends.map((e) => e.rate));
  const rounds = (xs: number[]) => (xs.length > 1 ? ` (rounds: ${xs.map(count).join(', ')})` : '');

  // 3. The lag at a fixed offered rate: for each write, the first observation that shows its step.
  await emptyTables(database);
  const lagLines = Math.round(((LAG_WARMUP_S + LAG_WINDOW_S) * LAG_POINTS_PER_S) / SERIES.length);
  const paced = await throughPipeline(lagLines, LAG_POINTS_PER_S, POLL_MS);
  if (process.env.BENCH_INGEST_DUMP)
    fs.writeFileSync(process.env.BENCH_INGEST_DUMP, JSON.stringify({ writes: paced.writes, seen: paced.seen }));
  const lags: number[] = [];
  let j = 0;
  for (const [step, at] of paced.writes.marks) {
    if (at - paced.writes.firstAt < LAG_WARMUP_S * 1000) continue;
    while (j < paced.seen.length && (paced.seen[j]![0] < step || paced.seen[j]![1] < at)) j++;
    if (j < paced.seen.length) lags.push(paced.seen[j]![1] - at);
  }
  const lag = stats(lags);
  const offeredS = (paced.writes.marks[paced.writes.marks.length - 1]![1] - paced.writes.firstAt) / 1000;
  const offered = (lagLines * SERIES.length) / offeredS;
  // The floor of this measurement: one poll's round trip.
  const polls: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t = performance.now();
    await sql`select step from runs where id = ${paced.run.id}`;
    polls.push(performance.now() - t);
  }
  log(`lag p95 ${ms(lag.p95)} over ${lag.n} writes`);

  const rows: Row[] = [
    {
      figure: `end to end: trainer → stored (${count(points)} points)`,
      value: `${count(e2eRate)} points/s${rounds(ends.map((e) => e.rate))}`,
      baseline: `raw COPY ${count(copyRate)} points/s${rounds(copies)}`,
      ratio: e2eRate / copyRate,
      target: `≥ ${count(TARGET_POINTS_PER_S)}/s and ≥ ${TARGET_RATIO * 100}% of COPY`,
      met: e2eRate >= TARGET_POINTS_PER_S && e2eRate / copyRate >= TARGET_RATIO,
    },
    {
      figure: 'the trainer writing (for scale)',
      value: `${count(mean(ends.map((e) => e.writeRate)))} points/s`,
      baseline: `${(ends[0]!.fileBytes / 1024 / 1024).toFixed(0)} MiB of lines`,
    },
    {
      figure: 'CPU while end to end: the worker',
      value: `${(100 * mean(ends.map((e) => e.workerCore))).toFixed(0)}% of a core`,
      baseline: `PostgreSQL ${(100 * mean(ends.map((e) => e.pgCore))).toFixed(0)}% of a core; machine ${mean(ends.map((e) => e.coresBusy)).toFixed(2)} of ${os.cpus().length} cores busy`,
    },
    {
      figure: 'the store alone (commitBatch)',
      value: `${count(storeRate)} points/s`,
      baseline: `raw COPY ${count(copyRate)} points/s`,
      ratio: storeRate / copyRate,
    },
    {
      figure: 'points stored / written (end to end)',
      value: ends.map((e) => `${count(e.stored)} / ${count(points)}; run ${e.status}`).join('; '),
      target: 'equal, completed',
      met: ends.every((e) => e.stored === points && e.status === 'completed'),
    },
    {
      figure: `lag: write → queryable at ${count(offered)} points/s offered (p50 / p95 / max)`,
      value: triple(lag),
      baseline: `poll round trip ${triple(stats(polls))}`,
      target: `p95 < ${TARGET_LAG_P95_MS} ms`,
      met: lag.p95 < TARGET_LAG_P95_MS,
    },
    {
      figure: 'points stored / written (lag run)',
      value: `${count(paced.stored)} / ${count(lagLines * SERIES.length)}; run ${paced.run.status}`,
      target: 'equal, completed',
      met: paced.stored === lagLines * SERIES.length && paced.run.status === 'completed',
    },
  ];
  printTable(`ingest — ${count(points)} points end to end on local, PostgreSQL`, rows, [
    "End to end: from the trainer's first write to the moment the last line's step is queryable " +
      '(runs.step, committed with the points), through the worker child process (local executor → tail → ' +
      "parse → batch → commitBatch). Raw COPY: the same points as text, made beforehand, COPY'd into " +
      'metric_points on one connection. Store alone: commitBatch in this process, 20 000 points a batch, ' +
      'made beforehand. Each starts from empty tables with the same indexes. ' +
      `Lag: the trainer writes every 5 ms what is due at ${count(LAG_POINTS_PER_S)} points/s and stamps each write; ` +
      `each write's lag is the first ${POLL_MS} ms poll that shows its step, less its stamp; ` +
      `the first ${LAG_WARMUP_S} s are left out (the reader starting).`,
  ]);
  await worker.stop();
});
