// The lifecycle over SSH to a real sshd on loopback: launch, metrics, stop, host-key
// pinning, unreachable machines, hostile strings, and a machine lost past its timeout.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { machines, metricPoints, metricSeries, processEvents } from '../../db/schema.js';
import { freePort } from '../../lib/temporal-dev-server.js';
import { encryptSecret } from '../../lib/keybox.js';
import { act, createProcess, deleteProcess, findRun, getProcess } from '../../services/processes.js';
import { startSshd, type TestSshd } from '../support/sshd.js';
import {
  EXAMPLE_TRAINER,
  groupAlive,
  makeTemplate,
  startStack,
  TEST_SECRET,
  TSX,
  uid,
  waitFor,
  waitForStatus,
  type Stack,
} from '../support/stack.js';

let stack: Stack;
let sshd: TestSshd;

beforeAll(async () => {
  sshd = await startSshd();
  stack = await startStack({ probeIntervalMs: 1000 });
});
afterAll(async () => {
  await stack?.close();
  await sshd?.stop();
});

async function sshMachine(overrides: Partial<typeof machines.$inferInsert> = {}) {
  const [row] = await stack.database.db
    .insert(machines)
    .values({
      name: `ssh-${uid()}`,
      kind: 'ssh',
      address: `${sshd.host}:${sshd.port}`,
      sshUser: sshd.username,
      privateKeyEncrypted: encryptSecret(TEST_SECRET, sshd.privateKey),
      hostKeyFingerprint: sshd.hostKeyFingerprint,
      slots: 2,
      ...overrides,
    })
    .returning();
  await stack.workers!.reconcile();
  return row!;
}

describe('a training process over SSH', () => {
  it('runs the example trainer to completion with every metric point stored', async () => {
    const machine = await sshMachine();
    const template = await makeTemplate(stack, {
      command: `'${TSX}' '${EXAMPLE_TRAINER}'`,
      params: { step_delay_ms: 0 },
      totalSteps: 300,
    });
    const process1 = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    const startAt = Date.now();
    await act(stack.deps, process1.id, 'start');
    await waitForStatus(stack, process1.id, ['running', 'completed']);
    console.log(`ssh start → running: ${Date.now() - startAt} ms`);
    const done = await waitForStatus(stack, process1.id, 'completed', 90_000);
    expect(done.progress.step).toBe(300);
    const run = await findRun(stack.deps, process1.id);
    expect(run.runDir).toMatch(/\.trainyard\/runs\/process-\d+\/run-1-\d+-[0-9a-f]{12}-[0-9a-f]{8}$/);
    const lines = fs.readFileSync(path.join(run.runDir!, 'metrics.jsonl'), 'utf8').trim().split('\n');
    const rows = await stack.database.db
      .select({ step: metricPoints.step })
      .from(metricPoints)
      .innerJoin(metricSeries, eq(metricSeries.id, metricPoints.seriesId))
      .where(eq(metricSeries.runId, run.id));
    const expected = new Set(
      lines.flatMap((l) =>
        Object.keys(JSON.parse(l) as object)
          .filter((k) => !['step', 'total_steps', 'epoch'].includes(k))
          .map((k) => `${k}@${(JSON.parse(l) as { step: number }).step}`),
      ),
    );
    expect(rows.length).toBe(expected.size);
    await deleteProcess(stack.deps, process1.id);
    await waitFor('the run directory to be removed', async () => !fs.existsSync(run.runDir!));
  });

  it('stops a trainer over SSH: TERM delivered, group gone, then stopped', async () => {
    const machine = await sshMachine();
    const template = await makeTemplate(stack, {
      command: `'${TSX}' '${EXAMPLE_TRAINER}'`,
      params: { step_delay_ms: 20 },
      totalSteps: 100000,
    });
    const process1 = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    await act(stack.deps, process1.id, 'start');
    await waitForStatus(stack, process1.id, 'running');
    await waitFor('progress', async () => ((await getProcess(stack.deps, process1.id)).progress.step ?? 0) > 10);
    const run = await findRun(stack.deps, process1.id);
    const stopAt = Date.now();
    await act(stack.deps, process1.id, 'stop');
    await waitForStatus(stack, process1.id, 'stopped');
    console.log(`ssh stop → stopped: ${Date.now() - stopAt} ms`);
    expect(groupAlive(run.pgid!)).toBe(false);
    expect(fs.existsSync(path.join(run.runDir!, 'checkpoint.json'))).toBe(true);
  });

  it('fails the start when the pinned host key does not match, naming both fingerprints', async () => {
    const wrong = 'SHA256:' + Buffer.alloc(32, 7).toString('base64').replace(/=+$/, '');
    const machine = await sshMachine({ hostKeyFingerprint: wrong });
    const template = await makeTemplate(stack, { command: 'sleep 30' });
    const process1 = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    await act(stack.deps, process1.id, 'start');
    const failed = await waitForStatus(stack, process1.id, 'failed', 30_000);
    expect(failed.lastError).toContain(wrong);
    expect(failed.lastError).toContain(sshd.hostKeyFingerprint);
  });

  it('fails the start of a machine that does not answer, after the retry policy, saying so', async () => {
    const machine = await sshMachine({ address: `127.0.0.1:${await freePort()}` });
    const template = await makeTemplate(stack, { command: 'sleep 30' });
    const process1 = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    const at = Date.now();
    await act(stack.deps, process1.id, 'start');
    const failed = await waitForStatus(stack, process1.id, 'failed', 60_000);
    console.log(`unreachable → failed after ${Date.now() - at} ms`);
    expect(failed.lastError).toMatch(/Launch failed/);
    expect(failed.lastError).toMatch(/127\.0\.0\.1/);
  });

  it('passes hostile strings in params, env and names to the trainer verbatim and runs nothing else', async () => {
    const marker = path.join(os.tmpdir(), `pwned-${uid()}`);
    const hostile = `a'b"c; touch ${marker}; $(touch ${marker}) \`touch ${marker}\` \n next line \\ $HOME ü 日本 <script>`;
    const machine = await sshMachine({ name: `ssh '; touch ${marker} ${uid()}` });
    const out = path.join(os.tmpdir(), `hostile-${uid()}`);
    const template = await makeTemplate(stack, {
      name: `tpl $(touch ${marker}) ${uid()}`,
      command: `printf '%s' "$HOSTILE" > '${out}.env'; printf '%s' "$TRAINYARD_PARAMS" > '${out}.params'`,
      env: { HOSTILE: hostile },
    });
    const process1 = await createProcess(stack.deps, {
      templateId: template.id,
      machineId: machine.id,
      params: { note: hostile },
    });
    await act(stack.deps, process1.id, 'start');
    await waitForStatus(stack, process1.id, 'completed');
    expect(fs.readFileSync(`${out}.env`, 'utf8')).toBe(hostile);
    expect((JSON.parse(fs.readFileSync(`${out}.params`, 'utf8')) as { note: string }).note).toBe(hostile);
    expect(fs.existsSync(marker)).toBe(false);
  });

  it('keeps a run going while the machine is briefly unreachable; past the lost-timeout it fails, and the trainer found later is stopped and noted', async () => {
    const machine = await sshMachine({ lostTimeoutSeconds: 4 });
    const template = await makeTemplate(stack, { command: 'while :; do sleep 0.2; done', stopGraceSeconds: 2 });

    // Brief outage: the run carries on.
    const brief = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    await act(stack.deps, brief.id, 'start');
    await waitForStatus(stack, brief.id, 'running');
    await sshd.down();
    await waitFor(
      'the outage to be noticed',
      async () => (await getProcess(stack.deps, brief.id)).machineUnreachableSince !== null,
      20_000,
      200,
    );
    expect((await getProcess(stack.deps, brief.id)).status).toBe('running');
    await sshd.up();
    await waitFor(
      'the machine to answer again',
      async () => (await getProcess(stack.deps, brief.id)).machineUnreachableSince === null,
      30_000,
      200,
    );
    expect((await getProcess(stack.deps, brief.id)).status).toBe('running');
    await act(stack.deps, brief.id, 'stop');
    await waitForStatus(stack, brief.id, 'stopped', 30_000);

    // A long outage: failed with the reason; the trainer is stopped once the machine is back.
    const lost = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    await act(stack.deps, lost.id, 'start');
    await waitForStatus(stack, lost.id, 'running');
    const run = await findRun(stack.deps, lost.id);
    await sshd.down();
    const failed = await waitForStatus(stack, lost.id, 'failed', 60_000);
    expect(failed.lastError).toMatch(/unreachable for more than 4 s/);
    expect(groupAlive(run.pgid!)).toBe(true);
    await sshd.up();
    await waitFor('the left-behind trainer to be stopped', async () => !groupAlive(run.pgid!), 60_000, 200);
    // The note follows the stop: wait for it rather than race it.
    await waitFor(
      'the note in the process log',
      async () => {
        const events = await stack.database.db.select().from(processEvents).where(eq(processEvents.processId, lost.id));
        return events.some((e) => /still running when the machine .* answered again; it was stopped/.test(e.message));
      },
      10_000,
      200,
    );
  });
});
