// A stop whose worker dies mid-grace: the next attempt keeps the deadline of the first
// TERM, so a trainer that ignores TERM is killed when its grace ends, not a grace later
// (or never, when each retry would start a fresh grace). The workers are
// real `trainyard worker` processes; the first is killed with SIGKILL.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { act, createProcess, findRun } from '../../services/processes.js';
import {
  groupAlive,
  localMachine,
  makeTemplate,
  startStack,
  waitFor,
  waitForStatus,
  startWorkerProcess as startWorkerWith,
  type Stack,
} from '../support/stack.js';

let stack: Stack;
const workers: ChildProcess[] = [];
const groups: number[] = [];

beforeAll(async () => {
  stack = await startStack({ worker: false });
});
afterAll(async () => {
  for (const w of workers) if (w.exitCode === null && w.signalCode === null) process.kill(-w.pid!, 'SIGKILL');
  for (const pgid of groups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {}
  }
  await stack?.close();
});

const startWorkerProcess = () => startWorkerWith(stack, workers);

const GRACE_S = 40;

describe('a stop whose worker dies mid-grace', () => {
  it(
    'the next attempt kills a trainer that ignores TERM at the first TERM’s deadline, not a fresh grace later',
    { timeout: 240_000 },
    async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-stop-restart-'));
      const template = await makeTemplate(stack, {
        command: `trap '' TERM; echo $$ >> "$LAUNCHES"; while :; do sleep 1; done`,
        env: { LAUNCHES: path.join(dir, 'launches') },
        stopGraceSeconds: GRACE_S,
      });
      const machine = await localMachine(stack);
      const first = await startWorkerProcess();
      const created = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
      await act(stack.deps, created.id, 'start');
      await waitForStatus(stack, created.id, 'running');
      const run = await findRun(stack.deps, created.id);
      groups.push(run.pgid!);

      const stopAt = Date.now();
      await act(stack.deps, created.id, 'stop');
      // The TERM went out (a stop announces it in the run directory first).
      await waitFor('the TERM', async () => fs.existsSync(path.join(run.runDir!, 'stop_requested')));
      await new Promise((r) => setTimeout(r, 2000));
      process.kill(-first.pid!, 'SIGKILL');
      await startWorkerProcess();

      // The grace is honoured: alive well into it …
      await new Promise((r) => setTimeout(r, Math.max(0, stopAt + (GRACE_S - 8) * 1000 - Date.now())));
      expect(groupAlive(run.pgid!)).toBe(true);
      // … and killed at its end. A stop that started the grace afresh on its retry (no sooner
      // than a heartbeat timeout, 15 s, after the kill) would kill after 2 + 15 + 40 s.
      const goneAt = await waitFor(
        'the trainer to be killed',
        async () => (groupAlive(run.pgid!) ? null : Date.now()),
        90_000,
        100,
      );
      const after = (goneAt - stopAt) / 1000;
      console.log(`stop → killed: ${after.toFixed(1)} s (grace ${GRACE_S} s)`);
      expect(after).toBeGreaterThanOrEqual(GRACE_S - 2);
      expect(after).toBeLessThan(GRACE_S + 12);
      await waitForStatus(stack, created.id, 'stopped', 60_000);
      expect(fs.readFileSync(path.join(dir, 'launches'), 'utf8').trim().split('\n')).toHaveLength(1);
    },
  );
});
