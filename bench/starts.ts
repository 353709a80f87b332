// DESIGN §8 "starts": 200 processes made and started in ONE action (a sweep with
// start: true) on `local` with a slot for each — the action's own time, and each process's
// time from the action to status `running` (p50/p95/last, and how many within 15 s);
// then rounds of 10 simultaneous starts → running. Beside each, the bare executor
// launching the same command the same number of times at once, in the same run.
// Usage: npm run bench -- starts [--quick]   (tsx bench/starts.ts --processes N: another count)
//
// The worker is a `trainyard worker` child process, as in production; this process plays
// the user (services/sweeps.ts createSweep, services/processes.ts act) and watches the
// database mirror with a 10 ms poll, as a page would see it.
import crypto from 'node:crypto';
import path from 'node:path';
import { eq } from 'drizzle-orm';
import { createExecutor } from '../executors/index.js';
import { machines, templates } from '../db/schema.js';
import { act, createProcess, type ProcessDeps } from '../services/processes.js';
import { createSweep } from '../services/sweeps.js';
import { seed } from '../services/seed.js';
import {
  ADMIN_PASSWORD,
  createBenchDatabase,
  killTrainersAtCleanup,
  onCleanup,
  printTable,
  quick,
  run,
  sleep,
  startTemporal,
  startWorkerChild,
  stats,
  temporalClient,
  tempDir,
  triple,
  type Row,
} from './support.js';

const flag = process.argv.indexOf('--processes');
const P = flag > 0 ? Number(process.argv[flag + 1]) : quick ? 40 : 200;
const BURST = 10;
const ROUNDS = quick ? 2 : 5;
const POLL_MS = 10;
const DEADLINE_S = quick ? 30 : 90;
const TARGET_ALL_MS = 15_000;
const TARGET_BURST_MS = 1000;
// A trainer that idles: what is measured is the way to `running`, not the training.
const COMMAND = 'exec sleep 600';
const ENV = { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: process.env.HOME ?? '/', LANG: 'C.UTF-8' };

await run('starts', async () => {
  if (!Number.isInteger(P) || P < 1) throw new Error('--processes takes a positive integer');
  const [{ url, database }, temporal] = await Promise.all([createBenchDatabase('starts'), startTemporal()]);
  const { db, sql } = database;
  await seed(db, { adminPassword: ADMIN_PASSWORD });
  // A slot for every process of the sweep and of every burst: nothing queues for a slot.
  await db
    .update(machines)
    .set({ slots: P + BURST * ROUNDS })
    .where(eq(machines.name, 'local'));
  const [local] = await db.select().from(machines).where(eq(machines.name, 'local'));
  const [template] = await db
    .insert(templates)
    .values({ name: 'bench idler', command: COMMAND, params: { seed: 0 }, stopGraceSeconds: 5 })
    .returning();

  const dataDir = tempDir('starts-data');
  const worker = await startWorkerChild({ databaseUrl: url, temporalAddress: temporal.address, dataDir });
  killTrainersAtCleanup(database);
  const deps: ProcessDeps = { db, client: (await temporalClient(temporal.address)).client };
  const log = (line: string) => console.error(`starts: ${line} (${(performance.now() / 1000).toFixed(1)} s)`);

  /** For each id, ms from `since` until the database first shows it running (Infinity past the deadline). */
  async function untilRunning(ids: () => Promise<number[]>, expected: number, since: number): Promise<number[]> {
    const seen = new Map<number, number>();
    while (Date.now() - since < DEADLINE_S * 1000) {
      const wanted = await ids();
      if (wanted.length > 0) {
        const rows = await sql<
          { id: number; status: string }[]
        >`select id, status from processes where id = any(${wanted})`;
        const now = Date.now();
        for (const row of rows) if (row.status === 'running' && !seen.has(row.id)) seen.set(row.id, now - since);
      }
      if (seen.size >= expected) break;
      await sleep(POLL_MS);
    }
    return [...seen.values(), ...Array<number>(Math.max(0, expected - seen.size)).fill(Infinity)];
  }

  // Warm-up: the worker's first workflow tasks and launches are slower (JIT, connections).
  for (let i = 0; i < 2; i++) {
    const warm = await createProcess(deps, { templateId: template!.id, machineId: local!.id });
    const at = Date.now();
    await act(deps, warm.id, 'start');
    await untilRunning(async () => [warm.id], 1, at);
  }
  log('warm');

  // 1. P processes made and started in one action.
  const seeds = Array.from({ length: P }, (_, i) => i + 1);
  const actionAt = Date.now();
  let sweepIds: number[] = [];
  const action = createSweep(deps, template!.id, {
    machineIds: [local!.id],
    grid: { seed: seeds },
    start: true,
    name: 'bench starts',
  }).then((sweep) => {
    sweepIds = sweep.processes.map((p) => p.id);
    return Date.now() - actionAt;
  });
  // The ids are known only once the action returns; until then the rows are found by name.
  const [sweepId] = await (async () => {
    for (;;) {
      const rows = await sql<{ id: number }[]>`select id from sweeps where name = 'bench starts'`;
      if (rows.length > 0) return [rows[0]!.id];
      await sleep(2);
    }
  })();
  const idsOfSweep = async () =>
    sweepIds.length > 0
      ? sweepIds
      : (await sql<{ id: number }[]>`select id from processes where sweep_id = ${sweepId}`).map((r) => r.id);
  const [actionMs, allRunning] = await Promise.all([action, untilRunning(idsOfSweep, P, actionAt)]);
  log(`sweep of ${P}: action ${actionMs} ms, ${allRunning.filter(Number.isFinite).length} running`);

  // 2. Rounds of BURST simultaneous starts of processes made beforehand.
  const burst: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const made = await Promise.all(
      Array.from({ length: BURST }, () => createProcess(deps, { templateId: template!.id, machineId: local!.id })),
    );
    await sleep(300);
    const at = Date.now();
    // An action that fails (a starved worker lets the update time out) is counted as never running.
    const starting = Promise.all(made.map((p) => act(deps, p.id, 'start').catch((error: Error) => error.message)));
    burst.push(...(await untilRunning(async () => made.map((p) => p.id), BURST, at)));
    for (const failed of (await starting).filter((r) => typeof r === 'string')) log(`a start failed: ${failed}`);
  }
  log('bursts done');

  // 3. The bare executor: the same command, launched P at once, then BURST at once per round.
  const bare = createExecutor({ kind: 'local', runsRoot: tempDir('starts-bare') });
  const handles: Awaited<ReturnType<typeof bare.launch>>[] = [];
  onCleanup('the bare trainers', async () => {
    for (const h of handles) {
      try {
        process.kill(-h.pgid, 'SIGKILL');
      } catch {}
    }
    await bare.close();
  });
  async function bareLaunches(n: number): Promise<number[]> {
    const at = Date.now();
    return Promise.all(
      Array.from({ length: n }, async () => {
        const runDir = path.posix.join(await bare.runsRoot(), `bare-${crypto.randomBytes(4).toString('hex')}`);
        handles.push(await bare.launch({ runDir, command: COMMAND, env: ENV }));
        return Date.now() - at;
      }),
    );
  }
  const bareAll = await bareLaunches(P);
  const bareBurst: number[] = [];
  for (let round = 0; round < ROUNDS; round++) bareBurst.push(...(await bareLaunches(BURST)));

  const within = allRunning.filter((x) => x <= TARGET_ALL_MS).length;
  const allStats = stats(allRunning);
  const bareAllStats = stats(bareAll);
  const burstStats = stats(burst);
  const bareBurstStats = stats(bareBurst);
  const rows: Row[] = [
    { figure: `one action making and starting ${P}: the action returns`, value: `${actionMs} ms` },
    {
      figure: `${P} started in one action → running (p50/p95/last)`,
      value: triple(allStats),
      baseline: triple(bareAllStats),
      ratio: allStats.max / bareAllStats.max,
      target: `last ≤ ${TARGET_ALL_MS} ms`,
      met: allStats.max <= TARGET_ALL_MS,
    },
    {
      figure: `… running within ${TARGET_ALL_MS / 1000} s of the action`,
      value: `${within} of ${P}`,
      target: `${P} of ${P}`,
      met: within === P,
    },
    {
      figure: `${BURST} simultaneous starts → running, ${ROUNDS} rounds (p50/p95/max)`,
      value: triple(burstStats),
      baseline: triple(bareBurstStats),
      ratio: burstStats.p95 / bareBurstStats.p95,
      target: `p95 ≤ ${TARGET_BURST_MS} ms`,
      met: burstStats.p95 <= TARGET_BURST_MS,
    },
  ];
  printTable(`starts — ${P} in one action, ${ROUNDS} × ${BURST} at once, on local`, rows, [
    `Product: services/sweeps.ts createSweep({grid: {seed: [1..${P}]}, start: true}) and services/processes.ts ` +
      `act(start) against a \`trainyard worker\` child process; running = first seen in the processes table ` +
      `(polled every ${POLL_MS} ms). The ratio of the first row compares the last one. Baseline: the bare local ` +
      'executor in this process launching the same command (launch → handle) as many times at once.',
  ]);
  await worker.stop();
});
