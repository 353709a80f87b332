// The restart policy against fake activities: restarts after a failure up to N, the backoff
// and its cancellation, excluded classes, machine lost, stalls, and the attempt carried
// through continue-as-new.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProcessEvent } from '../../activities/types.js';
import type { RestartPolicy } from '../../domain/restart.js';
import { disableUpdate, enableUpdate, snapshotQuery, startUpdate, stopUpdate } from '../../workflows/messages.js';
import { WorkflowHarness } from './harness.js';

let harness: WorkflowHarness;
beforeAll(async () => {
  harness = await WorkflowHarness.start();
});
afterAll(async () => {
  await harness?.stop();
});

const policy = (overrides: Partial<RestartPolicy>): RestartPolicy => ({
  onFailure: 2,
  backoffSeconds: 0,
  onMachineLost: false,
  except: [],
  ...overrides,
});
const EXIT_1 = { exitCode: 1, stderrTail: 'boom\n' };
const OK = { exitCode: 0, stderrTail: '' };

type Fleet = WorkflowHarness['fleet'];
const finishes = (fleet: Fleet, id: number) => fleet.calls(id, 'finishRun').map((call) => call.args[1]);
const events = (fleet: Fleet, id: number) => fleet.calls(id, 'recordEvent').map((call) => call.args[0] as ProcessEvent);
const createRuns = (fleet: Fleet, id: number) => fleet.calls(id, 'beginRun').map((call) => call.args[1] ?? null);
/** Waits until the workflow has decided on a restart: queued again, with the next attempt. */
const pendingRestart = (handle: { query: (q: typeof snapshotQuery) => Promise<{ status: string; attempt: number }> }) =>
  expect
    .poll(
      async () => {
        const { status, attempt } = await handle.query(snapshotQuery);
        return { status, attempt };
      },
      { timeout: 10_000 },
    )
    .toEqual({ status: 'queued', attempt: 2 });
const settled = (fleet: Fleet, id: number, runs: number) =>
  expect.poll(() => finishes(fleet, id).length, { timeout: 15_000 }).toBe(runs);

describe('a failed run of a template that restarts', () => {
  it('is followed by new runs up to onFailure times, each with the next attempt, then stays failed', async () => {
    await harness.withProcess(
      'restart-up-to-n',
      { watch: EXIT_1, restart: policy({ onFailure: 2 }) },
      async ({ processId, handle, fleet, recorded }) => {
        await handle.executeUpdate(startUpdate);
        await settled(fleet, processId, 3);
        const snapshot = await recorded('failed');
        expect(snapshot.attempt).toBe(3);
        expect(snapshot.lastError).toBe('The trainer exited with code 1: boom');
        expect(createRuns(fleet, processId)).toEqual([null, { attempt: 2 }, { attempt: 3 }]);
        expect(finishes(fleet, processId)).toEqual(
          Array(3).fill(expect.objectContaining({ status: 'failed', exitCode: 1, failureClass: 'exit_code' })),
        );
        expect(events(fleet, processId).map((e) => [e.kind, e.message])).toEqual([
          ['restarted', 'Run 1 failed (a non-zero exit code); attempt 2/3 starts in 0 s.'],
          ['restarted', 'Run 2 failed (a non-zero exit code); attempt 3/3 starts in 0 s.'],
          ['failed', 'Run 3 failed (a non-zero exit code); attempt 3/3, not restarted.'],
        ]);
        // A user's start begins a new chain.
        expect(await handle.executeUpdate(startUpdate)).toEqual({ status: 'queued' });
        await settled(fleet, processId, 6);
        expect(createRuns(fleet, processId).slice(3)).toEqual([null, { attempt: 2 }, { attempt: 3 }]);
      },
    );
  });

  it('that then succeeds completes, and the process keeps its attempt', async () => {
    await harness.withProcess(
      'restart-then-complete',
      { watches: [EXIT_1, OK], restart: policy({ onFailure: 3 }) },
      async ({ processId, handle, fleet, recorded }) => {
        await handle.executeUpdate(startUpdate);
        await settled(fleet, processId, 2);
        const snapshot = await recorded('completed');
        expect(snapshot.attempt).toBe(2);
        expect(fleet.lastRecord(processId)).toMatchObject({ status: 'completed', attempt: 2 });
      },
    );
  });

  it('waits the backoff, queued with the next attempt and the failure as lastError', async () => {
    await harness.withProcess(
      'restart-backoff',
      { watches: [EXIT_1, OK], restart: policy({ onFailure: 1, backoffSeconds: 2 }) },
      async ({ processId, handle, fleet, recorded }) => {
        await handle.executeUpdate(startUpdate);
        await settled(fleet, processId, 1);
        const failedAt = Date.now();
        await pendingRestart(handle);
        expect((await handle.query(snapshotQuery)).lastError).toBe('The trainer exited with code 1: boom');
        await expect.poll(() => fleet.lastRecord(processId)).toMatchObject({ status: 'queued', attempt: 2 });
        await expect.poll(() => createRuns(fleet, processId).length, { timeout: 10_000 }).toBe(2);
        expect(Date.now() - failedAt).toBeGreaterThanOrEqual(1500);
        await recorded('completed');
      },
    );
  });

  it('carries the pending restart and its attempt through continue-as-new', async () => {
    await harness.withProcess(
      'restart-continue-as-new',
      { watches: [EXIT_1, OK], restart: policy({ onFailure: 1, backoffSeconds: 3 }) },
      async ({ processId, handle, fleet, recorded }) => {
        await handle.executeUpdate(startUpdate);
        await pendingRestart(handle);
        expect(finishes(fleet, processId)).toHaveLength(1);
        const first = harness.env.client.workflow.getHandle(handle.workflowId, handle.firstExecutionRunId);
        await expect
          .poll(async () => (await first.describe()).status.name, { timeout: 10_000 })
          .toBe('CONTINUED_AS_NEW');
        // The new execution waits out the backoff, then runs attempt 2.
        expect(createRuns(fleet, processId)).toHaveLength(1);
        expect((await handle.query(snapshotQuery)).attempt).toBe(2);
        await settled(fleet, processId, 2);
        expect(createRuns(fleet, processId)).toEqual([null, { attempt: 2 }]);
        expect(await recorded('completed')).toMatchObject({ attempt: 2, runNumber: 2 });
      },
    );
  });

  it('is not restarted once stopped during the backoff', async () => {
    await harness.withProcess(
      'restart-stop-in-backoff',
      { watch: EXIT_1, restart: policy({ onFailure: 3, backoffSeconds: 60 }) },
      async ({ processId, handle, fleet, recorded }) => {
        await handle.executeUpdate(startUpdate);
        await pendingRestart(handle);
        expect(await handle.executeUpdate(stopUpdate)).toEqual({ status: 'stopped' });
        await recorded('stopped');
        await new Promise((resolve) => setTimeout(resolve, 500));
        expect(createRuns(fleet, processId)).toHaveLength(1);
        // Nothing was launched, so nothing is stopped, and the failed run stays failed.
        expect(fleet.calls(processId, 'stopTrainer')).toEqual([]);
        expect(finishes(fleet, processId)).toEqual([expect.objectContaining({ status: 'failed' })]);
      },
    );
  });

  it('is not restarted once disabled during the backoff; enable brings it back stopped', async () => {
    await harness.withProcess(
      'restart-disable-in-backoff',
      { watch: EXIT_1, restart: policy({ onFailure: 3, backoffSeconds: 60 }) },
      async ({ processId, handle, fleet, recorded }) => {
        await handle.executeUpdate(startUpdate);
        await pendingRestart(handle);
        expect(await handle.executeUpdate(disableUpdate)).toEqual({ status: 'disabled' });
        await recorded('disabled');
        expect(await handle.executeUpdate(enableUpdate)).toEqual({ status: 'stopped' });
        expect(createRuns(fleet, processId)).toHaveLength(1);
      },
    );
  });
});

describe('failure classes', () => {
  it('an excluded class is not restarted: out of memory (exit 137)', async () => {
    await harness.withProcess(
      'restart-except-oom',
      { watch: { exitCode: 137, stderrTail: 'Killed\n' }, restart: policy({ except: ['oom'] }) },
      async ({ processId, handle, fleet, recorded }) => {
        await handle.executeUpdate(startUpdate);
        await recorded('failed');
        expect(finishes(fleet, processId)).toEqual([expect.objectContaining({ failureClass: 'oom' })]);
        expect(events(fleet, processId)).toEqual([
          expect.objectContaining({
            kind: 'failed',
            message:
              'Run 1 failed (out of memory); attempt 1/3, not restarted (the policy does not restart this class).',
          }),
        ]);
        expect(createRuns(fleet, processId)).toHaveLength(1);
      },
    );
  });

  it('a failed launch is restarted unless excluded', async () => {
    await harness.withProcess(
      'restart-launch-failed',
      { launch: 'fail', restart: policy({ onFailure: 1 }) },
      async ({ processId, handle, fleet, recorded }) => {
        await handle.executeUpdate(startUpdate);
        await settled(fleet, processId, 2);
        await recorded('failed');
        expect(finishes(fleet, processId)).toEqual(
          Array(2).fill(expect.objectContaining({ status: 'failed', failureClass: 'launch_failed' })),
        );
      },
    );
  });

  it('a lost machine is not restarted without onMachineLost', async () => {
    await harness.withProcess(
      'restart-machine-lost-off',
      { watch: 'machine-lost', restart: policy({ onFailure: 2 }) },
      async ({ processId, handle, fleet, recorded }) => {
        await handle.executeUpdate(startUpdate);
        await recorded('failed');
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect(createRuns(fleet, processId)).toHaveLength(1);
        expect(finishes(fleet, processId)).toEqual([expect.objectContaining({ failureClass: 'machine_lost' })]);
      },
    );
  });

  it('a lost machine is restarted with onMachineLost', async () => {
    await harness.withProcess(
      'restart-machine-lost-on',
      { watches: ['machine-lost', OK], restart: policy({ onFailure: 2, onMachineLost: true }) },
      async ({ processId, handle, fleet, recorded }) => {
        await handle.executeUpdate(startUpdate);
        await settled(fleet, processId, 2);
        expect(await recorded('completed')).toMatchObject({ attempt: 2 });
      },
    );
  });

  it('a stalled run is stopped and restarted', async () => {
    await harness.withProcess(
      'restart-stalled',
      { watches: ['stalls', OK], restart: policy({ onFailure: 1 }) },
      async ({ processId, handle, fleet, recorded }) => {
        await handle.executeUpdate(startUpdate);
        await settled(fleet, processId, 2);
        await recorded('completed');
        expect(fleet.calls(processId, 'stopTrainer').map((c) => c.args[0])).toEqual([processId * 1000 + 1]);
        expect(finishes(fleet, processId)[0]).toEqual({
          status: 'failed',
          exitCode: null,
          error: 'Stalled: no metric line for 5 s.',
          failureClass: 'stalled',
        });
      },
    );
  });

  it('a template without a policy records nothing new and never restarts', async () => {
    await harness.withProcess(
      'restart-no-policy',
      { watch: EXIT_1 },
      async ({ processId, handle, fleet, recorded }) => {
        await handle.executeUpdate(startUpdate);
        await recorded('failed');
        expect(events(fleet, processId)).toEqual([]);
        expect(createRuns(fleet, processId)).toHaveLength(1);
      },
    );
  });
});
