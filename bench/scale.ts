// DESIGN §8 "scale": 200 processes running at once on `local` (20 with --quick), each
// trainer appending 10 metric lines a second, for 45 s (6 s): every status right (all
// running, then all stopped after a stop of each, every trainer group gone), the
// worker's RSS, the longest workflow history in events (every run of every chain),
// PostgreSQL rows/s ingested against the offered rate, every point written stored.
// Usage: npm run bench -- scale [--quick]   (tsx bench/scale.ts --processes N: another count)
//
// The worker is a `trainyard worker` child process; its RSS is read from /proc.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { eq } from 'drizzle-orm';
import { machines, templates } from '../db/schema.js';
import { act, createProcess, statusCounts, type ProcessDeps } from '../services/processes.js';
import { ServiceError } from '../services/errors.js';
import { seed } from '../services/seed.js';
import {
  ADMIN_PASSWORD,
  count,
  backendPids,
  cpuSecondsOf,
  cpuSecondsOfAll,
  machineCpu,
  createBenchDatabase,
  groupAlive,
  killTrainersAtCleanup,
  memoryOf,
  mib,
  onCleanup,
  pool,
  printTable,
  quick,
  run,
  sleep,
  startTemporal,
  startWorkerChild,
  temporalClient,
  tempDir,
  type Row,
} from './support.js';

const flag = process.argv.indexOf('--processes');
const P = flag > 0 ? Number(process.argv[flag + 1]) : quick ? 20 : 200;
// --quick: 6 s keeps the whole run near 30 s (the worker alone takes ~10 s to bundle and start).
const WINDOW_S = quick ? 6 : 45;
// Beyond these the bench reports what it got rather than waiting on (and the run stays under 3 minutes).
// Counted from the first action sent, sending included.
// 200 starts take 40–60 s on 2 cores (sending them alone, 50 at a time, about 40 s).
const START_DEADLINE_S = quick ? 20 : 75;
const STOP_DEADLINE_S = quick ? 20 : 35;
// The stop may use what is left of this much time since the bench began.
const BUDGET_S = quick ? 28 : 160;
const LINES_PER_S = 10;
const CONCURRENCY = 50; // actions in flight at once, as from many users or a script
const TARGET_RSS = 1024 * 1024 * 1024;
const TARGET_HISTORY = 4096;

// One point a line, ten lines a second on a fixed schedule (no drift), no process forked per line.
const WRITER = `use strict; use warnings; use Time::HiRes qw(time sleep);
$SIG{TERM} = sub { exit 0 };
open(my $f, '>>', $ENV{TRAINYARD_METRICS_FILE}) or die "metrics file: $!";
select((select($f), $| = 1)[0]);
my $t0 = time; my $i = 0;
while (1) {
  $i++;
  printf $f "{\\"step\\":%d,\\"loss\\":%.6f}\\n", $i, 1 / $i;
  my $wait = $t0 + $i / ${LINES_PER_S} - time;
  sleep($wait) if $wait > 0;
}
`;

await run('scale', async () => {
  if (!Number.isInteger(P) || P < 1) throw new Error('--processes takes a positive integer');
  const [{ url, database }, temporal] = await Promise.all([createBenchDatabase('scale', { max: 10 }), startTemporal()]);
  const { db, sql } = database;
  await seed(db, { adminPassword: ADMIN_PASSWORD });
  await db
    .update(machines)
    .set({ slots: P + 10 })
    .where(eq(machines.name, 'local'));
  const [local] = await db.select().from(machines).where(eq(machines.name, 'local'));
  const scripts = tempDir('scale-writer');
  const writer = path.join(scripts, 'writer.pl');
  fs.writeFileSync(writer, WRITER);
  const [template] = await db
    .insert(templates)
    .values({ name: 'bench writer', command: `exec perl '${writer}'`, stopGraceSeconds: 10 })
    .returning();

  const dataDir = tempDir('scale-data');
  const worker = await startWorkerChild({ databaseUrl: url, temporalAddress: temporal.address, dataDir });
  killTrainersAtCleanup(database);
  const deps: ProcessDeps = { db, client: (await temporalClient(temporal.address)).client };
  // Actions still queued when the bench ends are not sent (the clean-up stops what runs).
  const abandon = new AbortController();
  onCleanup('actions not yet sent', () => abandon.abort());
  const log = (line: string) => console.error(`scale: ${line} (${(performance.now() / 1000).toFixed(1)} s)`);
  const counts = async () => {
    const c = await statusCounts(deps);
    return { running: c.running ?? 0, stopped: c.stopped ?? 0, all: c };
  };
  /** Seconds from `since` until all P processes have `status`, or null past the deadline. */
  const secondsUntilAll = async (
    status: 'running' | 'stopped',
    since: number,
    deadlineS: number,
  ): Promise<number | null> => {
    while (performance.now() - since < deadlineS * 1000) {
      if ((await counts())[status] === P) return (performance.now() - since) / 1000;
      await sleep(100);
    }
    return null;
  };
  const describe = (c: Record<string, number>) =>
    Object.entries(c)
      .map(([k, v]) => `${v} ${k}`)
      .join(', ');

  await sleep(quick ? 1000 : 2000);
  const idle = memoryOf(worker.pid);
  log(`worker polling, RSS ${mib(idle.rss)}`);

  const created = await pool(Array.from({ length: P }), CONCURRENCY, () =>
    createProcess(deps, { templateId: template!.id, machineId: local!.id }),
  );
  const ids = created.map((p) => p.id);
  const workflowIds = new Map(created.map((p) => [p.id, p.workflowId]));
  const startAt = performance.now();
  let startsSentS: number | null = null;
  const starting = pool(ids, CONCURRENCY, (id) => act(deps, id, 'start'), abandon.signal).then(() => {
    startsSentS = (performance.now() - startAt) / 1000;
  });
  starting.catch(() => undefined);
  const allRunningS = await secondsUntilAll('running', startAt, START_DEADLINE_S);
  const atWindowStart = await counts();
  log(
    allRunningS !== null
      ? `${P} running after ${allRunningS.toFixed(1)} s`
      : `not all running after ${START_DEADLINE_S} s: ${describe(atWindowStart.all)}`,
  );

  // The steady window: statuses, worker memory and CPU, lines written and rows stored.
  const rowsNow = async () => Number((await sql<{ n: string }[]>`select count(*) as n from metric_points`)[0]!.n);
  const linesNow = async () => {
    const dirs = await sql<{ run_dir: string | null }[]>`select run_dir from runs where run_dir is not null`;
    let lines = 0;
    for (const { run_dir: dir } of dirs) {
      try {
        const text = fs.readFileSync(path.join(dir!, 'metrics.jsonl'), 'latin1');
        for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lines++;
      } catch {}
    }
    return lines;
  };
  const samples: { t: number; running: number; rss: number }[] = [];
  const pgPids = await backendPids(sql);
  const cpu0 = cpuSecondsOf(worker.pid);
  const pgCpu0 = cpuSecondsOfAll(pgPids);
  const temporalCpu0 = cpuSecondsOf(temporal.pid);
  const benchCpu0 = process.cpuUsage();
  const machine0 = machineCpu();
  const [rows0, lines0] = [await rowsNow(), await linesNow()];
  const t0 = performance.now();
  while (performance.now() - t0 < WINDOW_S * 1000) {
    await sleep(quick ? 1000 : 2000);
    samples.push({
      t: (performance.now() - t0) / 1000,
      running: (await counts()).running,
      rss: memoryOf(worker.pid).rss,
    });
  }
  const [rows1, lines1] = [await rowsNow(), await linesNow()];
  const windowS = (performance.now() - t0) / 1000;
  const workerCpu = (cpuSecondsOf(worker.pid) - cpu0) / windowS;
  const pgCpu = (cpuSecondsOfAll(pgPids) - pgCpu0) / windowS;
  const temporalCpu = (cpuSecondsOf(temporal.pid) - temporalCpu0) / windowS;
  const benchUsage = process.cpuUsage(benchCpu0);
  const benchCpu = (benchUsage.user + benchUsage.system) / 1e6 / windowS;
  const machine1 = machineCpu();
  const coresBusy = ((machine1.busy - machine0.busy) / (machine1.total - machine0.total)) * os.cpus().length;
  const rowsPerS = (rows1 - rows0) / windowS;
  const linesPerS = (lines1 - lines0) / windowS;
  const backlog = lines1 - rows1;
  const duringWindow = memoryOf(worker.pid);
  log(
    `window done: ${count(rowsPerS)} rows/s stored, ${count(linesPerS)} lines/s written, RSS ${mib(duringWindow.rss)}`,
  );

  // Stop every process; each must end stopped with its trainer's group gone.
  // Every start must have been sent before its stop (a stop before its start would be refused).
  await starting;
  const stopAt = performance.now();
  let refused = 0;
  let stopsSentS: number | null = null;
  const stopping = pool(
    ids,
    CONCURRENCY,
    async (id) => {
      try {
        await act(deps, id, 'stop');
      } catch (error) {
        if (!(error instanceof ServiceError)) throw error;
        refused += 1;
        console.error(`stop of ${id} refused: ${error.message}`);
      }
    },
    abandon.signal,
  ).then(() => {
    stopsSentS = (performance.now() - stopAt) / 1000;
  });
  stopping.catch(() => undefined);
  const stopDeadlineS = Math.max(STOP_DEADLINE_S, BUDGET_S - performance.now() / 1000);
  const allStoppedS = await secondsUntilAll('stopped', stopAt, stopDeadlineS);
  const finalCounts = await counts();
  log(
    allStoppedS !== null
      ? `${P} stopped after ${allStoppedS.toFixed(1)} s`
      : `not all stopped after ${stopDeadlineS.toFixed(0)} s: ${describe(finalCounts.all)}`,
  );
  const runRows = await sql<{ status: string; pgid: number | null }[]>`select status, pgid from runs`;
  const runsStopped = runRows.filter((r) => r.status === 'stopped').length;
  const groupsLeft = runRows.filter((r) => r.pgid !== null && groupAlive(r.pgid)).length;
  // Every line the trainers wrote, against the points stored (final once all are stopped).
  const linesWritten = await linesNow();
  const rowsStored = await rowsNow();
  const afterStop = memoryOf(worker.pid);

  // The longest history over every run of every chain (each continues as new after a trainer run).
  // Each chain is walked back from its latest run: visibility lists lag, the chain does not.
  const chains = await pool(ids, 10, async (id) => {
    const lengths: number[] = [];
    let runId: string | undefined;
    for (;;) {
      const history = await deps.client.workflow.getHandle(workflowIds.get(id)!, runId).fetchHistory();
      lengths.push(history.events?.length ?? 0);
      runId = history.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId || undefined;
      if (!runId) return lengths;
    }
  });
  const lengths = chains.flat().sort((a, b) => a - b);
  const longest = lengths[lengths.length - 1] ?? 0;
  log(`histories read: ${lengths.length} runs`);

  const minRunning = Math.min(...samples.map((s) => s.running));
  const maxRss = Math.max(...samples.map((s) => s.rss), duringWindow.rss, afterStop.rss);
  const offered = P * LINES_PER_S;
  const allStopped =
    finalCounts.stopped === P && runsStopped === runRows.length && runRows.length === P && groupsLeft === 0;
  const rows: Row[] = [
    {
      figure: `start of ${P} → all running`,
      value:
        allRunningS !== null
          ? `${allRunningS.toFixed(1)} s`
          : `not within ${START_DEADLINE_S} s: ${describe(atWindowStart.all)}`,
      baseline:
        startsSentS !== null
          ? `starts sent in ${(startsSentS as number).toFixed(1)} s (${CONCURRENCY} at a time)`
          : `starts still being sent (${CONCURRENCY} at a time)`,
      target: `all ${P} running`,
      met: allRunningS !== null,
    },
    {
      figure: `statuses in the window (${samples.length} samples)`,
      value: `${minRunning}/${P} running at the lowest`,
      target: `all ${P} running`,
      met: minRunning === P,
    },
    {
      figure: 'statuses after a stop of each',
      value: `${finalCounts.stopped}/${P} stopped${allStoppedS !== null ? ` in ${allStoppedS.toFixed(1)} s` : ` after ${stopDeadlineS.toFixed(0)} s (${describe(finalCounts.all)})`}; runs stopped ${runsStopped}/${runRows.length}; trainer groups alive ${groupsLeft}${refused ? `; ${refused} stops refused` : ''}`,
      baseline: stopsSentS !== null ? `stops sent in ${(stopsSentS as number).toFixed(1)} s` : 'stops still being sent',
      target: 'all stopped, none alive',
      met: allStopped,
    },
    {
      figure: 'worker RSS, highest sample (VmRSS)',
      value: mib(maxRss),
      baseline: `${mib(idle.rss)} idle`,
      ratio: maxRss / idle.rss,
      target: '< 1 GiB',
      met: maxRss < TARGET_RSS,
    },
    {
      figure: 'worker peak RSS (VmHWM, whole run)',
      value: mib(afterStop.peak),
      baseline: `${mib(idle.peak)} idle`,
      ratio: afterStop.peak / idle.peak,
      target: '< 1 GiB',
      met: afterStop.peak < TARGET_RSS,
    },
    {
      figure: `longest workflow history (${lengths.length} runs)`,
      value: `${longest} events`,
      baseline: `median ${lengths[Math.floor(lengths.length / 2)] ?? 0} events`,
      target: `≤ ${TARGET_HISTORY}`,
      met: longest <= TARGET_HISTORY,
    },
    {
      figure: 'metric rows/s stored (window)',
      value: count(rowsPerS),
      baseline: `${count(linesPerS)} lines/s written (${count(offered)} if all ran)`,
      ratio: rowsPerS / linesPerS,
    },
    {
      figure: 'backlog at the window end',
      value: `${count(backlog)} points (${(backlog / Math.max(1, linesPerS)).toFixed(1)} s of writing)`,
    },
    {
      figure: 'points stored / lines written (after the stop)',
      value: `${count(rowsStored)} / ${count(linesWritten)}`,
      target: 'equal',
      met: rowsStored === linesWritten,
    },
    { figure: 'worker CPU (window)', value: `${(100 * workerCpu).toFixed(0)}% of a core` },
    {
      figure: 'PostgreSQL backends CPU (window)',
      value: `${(100 * pgCpu).toFixed(0)}% of a core (${pgPids.length} backends)`,
    },
    { figure: 'Temporal dev server CPU (window)', value: `${(100 * temporalCpu).toFixed(0)}% of a core` },
    { figure: 'this bench process CPU (window)', value: `${(100 * benchCpu).toFixed(0)}% of a core` },
    {
      figure: 'whole machine busy (window)',
      value: `${coresBusy.toFixed(2)} of ${os.cpus().length} cores (the rest: trainers, other users of the box)`,
    },
  ];
  printTable(`scale — ${P} processes on local, ${LINES_PER_S} points/s each, ${WINDOW_S} s window`, rows, [
    'Worker: a `trainyard worker` child process; RSS from /proc/<pid>/status (idle = polling, before any process). ' +
      "Rows/s: metric_points rows counted at the window's ends, beside the lines the trainers wrote " +
      "meanwhile (counted in their files). Histories: fetchHistory() of every run of each process's " +
      'workflow chain (walked back through continuedExecutionRunId) after the stop. The PostgreSQL CPU is ' +
      "that of this database's backends. The window starts when all are running, or at the start deadline.",
  ]);
  await worker.stop();
});
