// DESIGN §8 "lifecycle": start action → status running, stop action → TERM delivered,
// trainer exit → status stopped (p50/p95/max), on `local` and over SSH to a loopback
// sshd, beside the bare executor doing the same launch and stop in the same run.
// Usage: npm run bench -- lifecycle [--quick]
//
// The worker runs as a child process (`trainyard worker`), as in production; this
// process plays the user (services/processes.ts: createProcess, act) and watches the
// database mirror with a 5 ms poll. The trainer traps TERM and writes the time it got
// it (date +%s%N), then the time it exits, into its run directory. Starts run one at a
// time, so the figures are latencies, not queueing; a concurrent burst is reported
// apart. Product and bare-executor cycles alternate, so noise falls on both alike.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter, tsToMs } from '@temporalio/common';
import { eq } from 'drizzle-orm';
import { createExecutor, type Executor } from '../executors/index.js';
import { machines, templates } from '../db/schema.js';
import { encryptSecret } from '../lib/keybox.js';
import { act, createProcess, type ProcessDeps } from '../services/processes.js';
import { seed } from '../services/seed.js';
import { startSshd } from '../test/support/sshd.js';
import {
  ADMIN_PASSWORD,
  BENCH_SECRET,
  createBenchDatabase,
  killTrainersAtCleanup,
  onCleanup,
  printTable,
  quick,
  run,
  sleep,
  startTemporal,
  startWorkerChild,
  temporalClient,
  stats,
  tempDir,
  triple,
  waitFor,
  type Row,
  type Stats,
} from './support.js';

const N = quick ? 5 : 50; // per machine: 10 processes in all with --quick, 100 without
const WARMUP = quick ? 1 : 3;
const BURST = quick ? 5 : 10;
const POLL_MS = 5;
// Written by the trainer into its run directory: `ready` once its TERM trap is set (a stop
// before that would kill it unstamped), then when TERM arrived, and just before it exits.
const COMMAND = "trap 'date +%s%N > term_at; date +%s%N > exit_at; exit 0' TERM; : > ready; sleep 600 & wait";
const TARGETS = {
  start: { local: 500, ssh: 800 },
  term: 300,
  stopped: 500,
};

interface Cycle {
  start: number;
  term: number;
  stopped: number;
}

/** What a product cycle leaves for the timeline: its process and the bench's own clock readings. */
interface Marks {
  processId: number;
  workflowId: string;
  startAt: number;
  stopAt: number;
  exitAt: number;
}

/**
 * Where the time goes: for each activity the workflow ran (recordStatus by the status it
 * wrote), when it completed, in ms after a mark — from the Temporal history's event times.
 */
async function timeline(client: Client, marks: Marks): Promise<{ label: string; atMs: number }[]> {
  const workflowId = marks.workflowId;
  let history = await client.workflow.getHandle(workflowId).fetchHistory();
  const previous = history.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId;
  if (previous) history = await client.workflow.getHandle(workflowId, previous).fetchHistory();
  const scheduled = new Map<string, string>();
  const out: { label: string; atMs: number }[] = [];
  for (const event of history.events ?? []) {
    const at = tsToMs(event.eventTime);
    const s = event.activityTaskScheduledEventAttributes;
    if (s) {
      let label = s.activityType?.name ?? '?';
      if (label === 'recordStatus') {
        const input = defaultPayloadConverter.fromPayload<{ status: string }>(s.input!.payloads![0]!);
        label = `recordStatus(${input.status})`;
      }
      scheduled.set(String(event.eventId), label);
    }
    const c = event.activityTaskCompletedEventAttributes;
    if (c) out.push({ label: scheduled.get(String(c.scheduledEventId)) ?? '?', atMs: at });
    if (event.workflowExecutionUpdateAcceptedEventAttributes) {
      const name = event.workflowExecutionUpdateAcceptedEventAttributes.acceptedRequest?.input?.name ?? '?';
      out.push({ label: `update ${name} accepted`, atMs: at });
    }
  }
  return out;
}

/** p50 of each step's time after its phase's mark, steps in the order they happened. */
function phaseSummary(all: { label: string; atMs: number }[][], marks: Marks[], phase: 'start' | 'stop'): string {
  const byLabel = new Map<string, number[]>();
  all.forEach((events, i) => {
    const m = marks[i]!;
    const stopIndex = events.findIndex((e) => e.label === 'update stop accepted');
    const slice =
      phase === 'start'
        ? events.slice(0, stopIndex < 0 ? events.length : stopIndex)
        : stopIndex < 0
          ? []
          : events.slice(stopIndex);
    const mark = phase === 'start' ? m.startAt : m.stopAt;
    for (const e of slice) {
      if (!byLabel.has(e.label)) byLabel.set(e.label, []);
      byLabel.get(e.label)!.push(e.atMs - mark);
    }
  });
  return [...byLabel.entries()].map(([label, xs]) => `${label} +${Math.round(stats(xs).p50)}`).join(' → ');
}

const wallMsOf = (file: string): number | null => {
  try {
    const text = fs.readFileSync(file, 'utf8').trim();
    return /^\d{19}$/.test(text) ? Number(BigInt(text) / 1000n) / 1000 : null; // ns → ms, µs kept
  } catch {
    return null;
  }
};

/** Waits until the trainer has set its TERM trap. */
async function ready(runDir: string): Promise<void> {
  await waitFor(`the trainer in ${runDir} ready`, () => fs.existsSync(path.join(runDir, 'ready')), 30_000, 1);
}

/** Waits for the trainer's TERM and exit stamps. */
async function stampsIn(runDir: string): Promise<{ term: number; exit: number }> {
  const term = await waitFor(`TERM stamp in ${runDir}`, () => wallMsOf(path.join(runDir, 'term_at')), 30_000, 1);
  const exit = await waitFor(`exit stamp in ${runDir}`, () => wallMsOf(path.join(runDir, 'exit_at')), 30_000, 1);
  return { term, exit };
}

await run('lifecycle', async () => {
  const [{ url, database }, temporal, sshd] = await Promise.all([
    createBenchDatabase('lifecycle'),
    startTemporal(),
    startSshd(),
  ]);
  onCleanup('sshd', () => sshd.stop());
  const { db, sql } = database;
  await seed(db, { adminPassword: ADMIN_PASSWORD });
  // Slots for the burst; the sequential part never has two trainers at once.
  await db
    .update(machines)
    .set({ slots: Math.max(BURST, 4) })
    .where(eq(machines.name, 'local'));
  const [local] = await db.select().from(machines).where(eq(machines.name, 'local'));
  const [ssh] = await db
    .insert(machines)
    .values({
      name: 'loopback-ssh',
      kind: 'ssh',
      address: `${sshd.host}:${sshd.port}`,
      sshUser: sshd.username,
      privateKeyEncrypted: encryptSecret(BENCH_SECRET, sshd.privateKey),
      hostKeyFingerprint: sshd.hostKeyFingerprint,
      slots: 2,
    })
    .returning();
  const [template] = await db
    .insert(templates)
    .values({ name: 'bench sleeper', command: COMMAND, stopGraceSeconds: 10 })
    .returning();

  const dataDir = tempDir('lifecycle-data');
  console.error(`lifecycle: services up in ${Math.round(performance.now())} ms`);
  const worker = await startWorkerChild({ databaseUrl: url, temporalAddress: temporal.address, dataDir });
  console.error(`lifecycle: worker polling at ${Math.round(performance.now())} ms`);
  killTrainersAtCleanup(database);
  // Over SSH the run directories are under the login user's ~/.trainyard/runs: remove exactly ours.
  onCleanup('SSH run directories', async () => {
    const rows = await sql<{ run_dir: string | null }[]>`select run_dir from runs where machine_id = ${ssh!.id}`;
    for (const { run_dir: runDir } of rows) {
      if (!runDir || !/\/\.trainyard\/runs\/process-\d+\/run-[\w-]+$/.test(runDir)) continue;
      fs.rmSync(runDir, { recursive: true, force: true });
      try {
        fs.rmdirSync(path.dirname(runDir));
      } catch {}
    }
  });

  const deps: ProcessDeps = { db, client: (await temporalClient(temporal.address)).client };

  const statusOf = async (id: number) =>
    (await sql<{ status: string }[]>`select status from processes where id = ${id}`)[0]?.status;
  const runDirOf = async (id: number) =>
    (
      await sql<
        { run_dir: string | null }[]
      >`select run_dir from runs where process_id = ${id} order by number desc limit 1`
    )[0]?.run_dir ?? null;

  /** One process through start → running → stop → TERM → stopped, through the product. */
  const marks: Record<'local' | 'ssh', Marks[]> = { local: [], ssh: [] };
  async function productCycle(machineId: number, into?: Marks[]): Promise<Cycle> {
    const created = await createProcess(deps, { templateId: template!.id, machineId });
    const startAt = Date.now();
    await act(deps, created.id, 'start');
    await waitFor(
      `process ${created.id} running`,
      async () => (await statusOf(created.id)) === 'running',
      60_000,
      POLL_MS,
    );
    const start = Date.now() - startAt;
    const runDir = await waitFor('its run directory', () => runDirOf(created.id));
    await ready(runDir);
    await sleep(50);
    const stopAt = Date.now();
    const stopping = act(deps, created.id, 'stop');
    const stopped = waitFor(
      `process ${created.id} stopped`,
      async () => ((await statusOf(created.id)) === 'stopped' ? Date.now() : null),
      60_000,
      POLL_MS,
    );
    const stamps = await stampsIn(runDir);
    const stoppedAt = await stopped;
    await stopping;
    into?.push({ processId: created.id, workflowId: created.workflowId, startAt, stopAt, exitAt: stamps.exit });
    return { start, term: stamps.term - stopAt, stopped: stoppedAt - stamps.exit };
  }

  /** The same command launched and stopped by a bare executor: the floor under the product's figures. */
  async function bareCycle(executor: Executor): Promise<Cycle> {
    const runDir = path.posix.join(await executor.runsRoot(), `bare-${crypto.randomBytes(4).toString('hex')}`);
    const startAt = Date.now();
    const handle = await executor.launch({
      runDir,
      command: COMMAND,
      env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: process.env.HOME ?? '/', LANG: 'C.UTF-8' },
    });
    const start = Date.now() - startAt;
    await ready(runDir);
    await sleep(50);
    const stopAt = Date.now();
    const stopping = executor.stop(handle, 10_000);
    const stamps = await stampsIn(runDir);
    await stopping;
    const goneAt = Date.now();
    await executor.removeRunDir(runDir);
    return { start, term: stamps.term - stopAt, stopped: goneAt - stamps.exit };
  }

  const bareLocal = createExecutor({ kind: 'local', runsRoot: tempDir('lifecycle-bare-local') });
  const bareSsh = createExecutor({
    kind: 'ssh',
    host: sshd.host,
    port: sshd.port,
    username: sshd.username,
    privateKey: sshd.privateKey,
    hostKeyFingerprint: sshd.hostKeyFingerprint,
    runsRoot: tempDir('lifecycle-bare-ssh'),
  });
  onCleanup('the bare executors', async () => {
    await bareSsh.close();
    await bareLocal.close();
  });

  const results: Record<'local' | 'ssh', { product: Cycle[]; bare: Cycle[] }> = {
    local: { product: [], bare: [] },
    ssh: { product: [], bare: [] },
  };
  for (const [kind, machineId, executor] of [
    ['local', local!.id, bareLocal],
    ['ssh', ssh!.id, bareSsh],
  ] as const) {
    for (let i = 0; i < WARMUP; i++) {
      await productCycle(machineId);
      await bareCycle(executor);
    }
    for (let i = 0; i < N; i++) {
      // Alternate which goes first, so a slow spell on the machine falls on both.
      if (i % 2 === 0) {
        results[kind].product.push(await productCycle(machineId, marks[kind]));
        results[kind].bare.push(await bareCycle(executor));
      } else {
        results[kind].bare.push(await bareCycle(executor));
        results[kind].product.push(await productCycle(machineId, marks[kind]));
      }
    }
    console.error(`lifecycle: ${kind} done at ${Math.round(performance.now())} ms`);
  }

  // A burst: BURST processes started at once, then stopped at once (local). Queueing included.
  const burstIds = (
    await Promise.all(
      Array.from({ length: BURST }, () => createProcess(deps, { templateId: template!.id, machineId: local!.id })),
    )
  ).map((p) => p.id);
  const firstSeen = async (status: string, since: number) => {
    const seen = new Map<number, number>();
    await waitFor(
      `${BURST} processes ${status}`,
      async () => {
        const rows = await sql<
          { id: number; status: string }[]
        >`select id, status from processes where id = any(${burstIds})`;
        const now = Date.now();
        for (const row of rows) if (row.status === status && !seen.has(row.id)) seen.set(row.id, now);
        return seen.size === burstIds.length;
      },
      60_000,
      POLL_MS,
    );
    return burstIds.map((id) => seen.get(id)! - since);
  };
  const burstStartAt = Date.now();
  const burstStarts = Promise.all(burstIds.map((id) => act(deps, id, 'start')));
  const burstRunning = await firstSeen('running', burstStartAt);
  await burstStarts;
  const burstDirs = await Promise.all(burstIds.map((id) => waitFor('run dir', () => runDirOf(id))));
  await Promise.all(burstDirs.map((dir) => ready(dir)));
  await sleep(100);
  const burstStopAt = Date.now();
  const burstStops = Promise.all(burstIds.map((id) => act(deps, id, 'stop')));
  const stoppedSeen = firstSeen('stopped', 0);
  const burstStamps = await Promise.all(burstDirs.map((dir) => stampsIn(dir)));
  const burstStopped = await stoppedSeen;
  await burstStops;

  // Figures
  const rows: Row[] = [];
  const row = (figure: string, product: Stats, bare: Stats | null, target: number | null) =>
    rows.push({
      figure,
      value: triple(product),
      ...(bare ? { baseline: triple(bare), ratio: product.p95 / bare.p95 } : {}),
      ...(target !== null ? { target: `p95 ≤ ${target} ms`, met: product.p95 <= target } : {}),
    });
  for (const kind of ['local', 'ssh'] as const) {
    const { product, bare } = results[kind];
    const s = (cycles: Cycle[], key: keyof Cycle) => stats(cycles.map((c) => c[key]));
    row(`${kind}: start action → running (p50/p95/max)`, s(product, 'start'), s(bare, 'start'), TARGETS.start[kind]);
    row(`${kind}: stop action → TERM delivered`, s(product, 'term'), s(bare, 'term'), TARGETS.term);
    row(`${kind}: trainer exit → stopped`, s(product, 'stopped'), s(bare, 'stopped'), TARGETS.stopped);
  }
  row(`local burst of ${BURST}: start → running`, stats(burstRunning), null, null);
  row(`local burst of ${BURST}: stop → TERM`, stats(burstStamps.map((s) => s.term - burstStopAt)), null, null);
  row(
    `local burst of ${BURST}: exit → stopped`,
    stats(burstStamps.map((s, i) => burstStopped[i]! - s.exit)),
    null,
    null,
  );
  const notes: string[] = [];
  for (const kind of ['local', 'ssh'] as const) {
    const lines = await Promise.all(marks[kind].map((m) => timeline(deps.client, m)));
    const exitStats = stats(marks[kind].map((m) => m.exitAt - m.stopAt));
    notes.push(`${kind}, start (p50 ms after the start action): ${phaseSummary(lines, marks[kind], 'start')}`);
    notes.push(
      `${kind}, stop (p50 ms after the stop action; the trainer exits at +${Math.round(exitStats.p50)}): ${phaseSummary(lines, marks[kind], 'stop')}`,
    );
  }
  printTable(`lifecycle — ${N} processes per machine, one at a time (+ ${WARMUP} warm-up each)`, rows, [
    'Baselines: the bare executor (executors/) in this process launching the same command ' +
      '(launch → handle), stopping it (stop() → TERM stamp), and seeing the group gone (exit stamp → ' +
      'stop() resolved). Product figures: ' +
      'services/processes.ts act() against a `trainyard worker` child process, ' +
      `status read from the processes table every ${POLL_MS} ms ` +
      `(detection adds up to ~${POLL_MS} ms plus a query). TERM and exit times are the trainer's own \`date +%s%N\` stamps. ` +
      'The burst rows have no target: they include queueing (all started, then all stopped, at once).',
    'Where the time goes — activity completions in the Temporal history (server clock, same host), p50 ' +
      'over the timed processes:',
    ...notes,
  ]);
  console.error(`lifecycle: worker pid ${worker.pid}`);
  // Every trainer stopped by now; stop the worker before the database goes.
  await worker.stop();
});
