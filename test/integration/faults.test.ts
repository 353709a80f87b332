// Fault injection with real processes: Temporal restarted mid-run (SQLite persistence),
// PostgreSQL connections cut mid-run, and a metrics file full of garbage. Each run must
// finish with the right status, one trainer, and every metric point stored exactly once.
// (Worker SIGKILL: worker-restart.test.ts; sshd killed: lifecycle-ssh.test.ts.)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { eq, sql } from 'drizzle-orm';
import { afterAll, describe, expect, it } from 'vitest';
import { metricSeries } from '../../db/schema.js';
import { findTemporalCli } from '../../lib/temporal-cli.js';
import { freePort, startTemporalDevServer, type DevServer } from '../../lib/temporal-dev-server.js';
import { act, createProcess, findRun, getProcess } from '../../services/processes.js';
import {
  countedExampleTemplate,
  launchCount,
  localMachine,
  makeTemplate,
  startStack,
  storedPoints,
  waitFor,
  waitForStatus,
  writtenPoints,
} from '../support/stack.js';

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
});

describe('faults mid-run', () => {
  it('Temporal restarted mid-run: the workflow and the run carry on, one trainer, every point once', async () => {
    const cli = findTemporalCli();
    if (!cli) throw new Error('the global setup found a Temporal CLI; it should be found again here');
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-temporal-restart-'));
    const port = await freePort();
    const options = {
      cli,
      port,
      uiPort: null,
      namespace: 'default',
      dbFile: path.join(stateDir, 'temporal.sqlite'),
      stateDir,
    };
    let server: DevServer = await startTemporalDevServer(options);
    cleanups.push(() => server.stop());
    const stack = await startStack({ temporalAddress: server.address });
    cleanups.push(() => stack.close());

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-fault-'));
    const template = await countedExampleTemplate(stack, dir, 1200);
    const machine = await localMachine(stack);
    const process1 = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    await act(stack.deps, process1.id, 'start');
    await waitForStatus(stack, process1.id, 'running');
    await waitFor('progress', async () => ((await getProcess(stack.deps, process1.id)).progress.step ?? 0) > 100);

    await server.stop();
    await new Promise((r) => setTimeout(r, 2000));
    server = await startTemporalDevServer(options);

    const done = await waitForStatus(stack, process1.id, 'completed', 120_000);
    expect(done.progress.step).toBe(1200);
    const run = await findRun(stack.deps, process1.id);
    expect(launchCount(dir)).toBe(1);
    expect(await storedPoints(stack, run.id)).toEqual(writtenPoints(path.join(run.runDir!, 'metrics.jsonl')));
  });

  it('PostgreSQL connections cut mid-run: ingest retries and nothing is lost or doubled', async () => {
    const stack = await startStack();
    cleanups.push(() => stack.close());
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-fault-'));
    const template = await countedExampleTemplate(stack, dir, 1500);
    const machine = await localMachine(stack);
    const process1 = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    await act(stack.deps, process1.id, 'start');
    await waitForStatus(stack, process1.id, 'running');

    // Cut every other connection to this database three times while the run goes on.
    const [{ db }] = (await stack.database.sql`select current_database() as db`) as unknown as [{ db: string }];
    for (let cut = 0; cut < 3; cut++) {
      await new Promise((r) => setTimeout(r, 1500));
      const admin = (await import('postgres')).default(
        process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
        { max: 1, onnotice: () => {} },
      );
      await admin`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${db} and pid <> pg_backend_pid()`;
      await admin.end();
    }

    await waitForStatus(stack, process1.id, 'completed', 120_000);
    const run = await findRun(stack.deps, process1.id);
    expect(launchCount(dir)).toBe(1);
    expect(await storedPoints(stack, run.id)).toEqual(writtenPoints(path.join(run.runDir!, 'metrics.jsonl')));
  });

  it('garbage, a 10 MB line and a truncated last line are counted and skipped; the run goes on', async () => {
    const stack = await startStack();
    cleanups.push(() => stack.close());
    const script = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-garbage-')), 'garbage.mjs');
    fs.writeFileSync(
      script,
      `import fs from 'node:fs';
const f = process.env.TRAINYARD_METRICS_FILE;
const put = (s) => fs.appendFileSync(f, s);
put('{"step":1,"loss":0.9}\\n');
put('this is not json\\n');
put('{"loss":0.5}\\n');
put('{"step":-3,"loss":0.5}\\n');
put('{"step":2,"loss":NaN,"lr":Infinity,"note":"NaN stays a string"}\\n');
put('{"step":3,"loss":' + '9'.repeat(10 * 1024 * 1024) + '}\\n');
put('\\u0000\\u0001 binary junk \\u00ff\\n');
put('{"step":4,"loss":0.4}\\n');
put('{"step":5,"lo');
`,
    );
    const template = await makeTemplate(stack, { command: `node '${script}'` });
    const machine = await localMachine(stack);
    const process1 = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    await act(stack.deps, process1.id, 'start');
    await waitForStatus(stack, process1.id, 'completed', 60_000);
    const run = await findRun(stack.deps, process1.id);
    const points = await storedPoints(stack, run.id);
    expect(points.get('loss@1')).toBe(0.9);
    expect(Number.isNaN(points.get('loss@2'))).toBe(true);
    expect(points.get('lr@2')).toBe(Infinity);
    expect(points.get('loss@4')).toBe(0.4);
    expect(points.has('loss@3')).toBe(false);
    expect(points.has('note@2')).toBe(false);
    expect(run.oversizedLines).toBe(1);
    // not json, no step, a negative step, the binary junk, and the truncated last line once the trainer is gone
    expect(run.malformedLines).toBe(5);
    const [row] = await stack.database.db
      .select({ n: sql<number>`count(*)::int` })
      .from(metricSeries)
      .where(eq(metricSeries.runId, run.id));
    expect(row!.n).toBe(2);
  });
});
