// The training-process workflow, branch by branch, against fake activities: runs, stops,
// failures, disable/enable, delete and continue-as-new. No PostgreSQL, no sshd, no trainer.
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  deleteUpdate,
  disableUpdate,
  enableUpdate,
  snapshotQuery,
  startUpdate,
  stopUpdate,
} from '../../workflows/messages.js';
import { WorkflowHarness } from './harness.js';

let harness: WorkflowHarness;
beforeAll(async () => {
  harness = await WorkflowHarness.start();
});
afterAll(async () => {
  await harness?.stop();
});

const finishes = (calls: { args: unknown[] }[]) => calls.map((call) => call.args[1]);

/**
 * A new process went from `created` through every status of `path`, in order: the last
 * record is its end, at version path.length (one change each), and the records follow it.
 * (The mirror writes the newest status, so a change made while a write was in flight is
 * not written on its own.)
 */
function expectPath(fleet: WorkflowHarness['fleet'], processId: number, path: string[]): void {
  const full = ['created', ...path];
  const records = fleet.statuses(processId);
  expect(fleet.lastRecord(processId)).toMatchObject({ status: path.at(-1), statusVersion: path.length });
  let at = 0;
  for (const status of records) {
    at = full.indexOf(status, at);
    expect(at, `${records.join(', ')} follows ${full.join(', ')}`).toBeGreaterThanOrEqual(0);
  }
}

describe('a run', () => {
  it('that exits 0 is recorded queued, starting, running, completed, and its slot is freed', async () => {
    await harness.withProcess('completes', {}, async ({ processId, handle, fleet, recorded }) => {
      expect(await handle.executeUpdate(startUpdate)).toEqual({ status: 'queued' });
      await recorded('completed');
      expectPath(fleet, processId, ['queued', 'starting', 'running', 'completed']);
      expect(
        fleet
          .calls(processId)
          .map((c) => c.name)
          .filter((n) => n !== 'recordStatus'),
      ).toEqual(['beginRun', 'launchTrainer', 'runTraining', 'releaseSlot', 'finishRun']);
      expect(finishes(fleet.calls(processId, 'finishRun'))).toEqual([
        { status: 'completed', exitCode: 0, error: null },
      ]);
    });
  });

  it('made with start runs without an update: queued, starting, running, completed', async () => {
    await harness.withProcess(
      'made-started',
      {},
      async ({ processId, fleet, recorded }) => {
        await recorded('completed');
        expectPath(fleet, processId, ['queued', 'starting', 'running', 'completed']);
        expect(fleet.calls(processId, 'beginRun')).toHaveLength(1);
        expect(fleet.calls(processId, 'acquireSlot')).toEqual([]);
      },
      undefined,
      { start: true },
    );
  });

  it('with no free slot at its start waits for one through acquireSlot, then runs', async () => {
    await harness.withProcess('slot-later', { slot: 'hold' }, async ({ processId, handle, fleet, recorded }) => {
      await handle.executeUpdate(startUpdate);
      await expect.poll(() => fleet.calls(processId, 'acquireSlot').length, { timeout: 10_000 }).toBe(1);
      expect(fleet.lastRecord(processId)?.status).toBe('queued');
      expect(fleet.calls(processId, 'launchTrainer')).toEqual([]);
      fleet.release(processId, 'slot');
      await recorded('completed');
      expect(
        fleet
          .calls(processId)
          .map((c) => c.name)
          .filter((n) => n !== 'recordStatus'),
      ).toEqual(['beginRun', 'acquireSlot', 'launchTrainer', 'runTraining', 'releaseSlot', 'finishRun']);
    });
  });

  it('that exits non-zero fails with the exit code and the tail of stderr', async () => {
    await harness.withProcess(
      'exits-non-zero',
      { watch: { exitCode: 3, stderrTail: 'CUDA out of memory\n' } },
      async ({ processId, handle, fleet, recorded }) => {
        await handle.executeUpdate(startUpdate);
        const snapshot = await recorded('failed');
        expect(snapshot.lastError).toBe('The trainer exited with code 3: CUDA out of memory');
        expect(finishes(fleet.calls(processId, 'finishRun'))).toEqual([
          {
            status: 'failed',
            exitCode: 3,
            error: 'The trainer exited with code 3: CUDA out of memory',
            failureClass: 'oom',
          },
        ]);
      },
    );
  });

  it('continues as new once finished, carrying status, version and run number into the next run', async () => {
    await harness.withProcess('continue-as-new', {}, async ({ processId, handle, fleet, recorded }) => {
      await handle.executeUpdate(startUpdate);
      await recorded('completed');
      const first = harness.env.client.workflow.getHandle(handle.workflowId, handle.firstExecutionRunId);
      await expect.poll(async () => (await first.describe()).status.name, { timeout: 10_000 }).toBe('CONTINUED_AS_NEW');
      const carried = await handle.query(snapshotQuery);
      expect(carried).toMatchObject({
        processId,
        status: 'completed',
        statusVersion: 4,
        runNumber: 1,
        runId: null,
        lastError: null,
      });

      // The next execution starts again from there.
      expect(await handle.executeUpdate(startUpdate)).toEqual({ status: 'queued' });
      await expect.poll(() => fleet.lastRecord(processId)?.statusVersion, { timeout: 10_000 }).toBe(8);
      expect(fleet.lastRecord(processId)?.status).toBe('completed');
      expect((await handle.query(snapshotQuery)).runNumber).toBe(2);
    });
  });
});

describe('a stop', () => {
  it('while queued launches nothing: the wait for a slot ends and the run is stopped', async () => {
    await harness.withProcess('stop-queued', { slot: 'hold' }, async ({ processId, handle, fleet, recorded }) => {
      await handle.executeUpdate(startUpdate);
      await recorded('queued');
      await expect.poll(() => fleet.calls(processId, 'acquireSlot').length, { timeout: 10_000 }).toBe(1);
      expect(await handle.executeUpdate(stopUpdate)).toEqual({ status: 'stopping' });
      await recorded('stopped');
      expectPath(fleet, processId, ['queued', 'stopping', 'stopped']);
      expect(fleet.calls(processId, 'launchTrainer')).toEqual([]);
      expect(fleet.calls(processId, 'releaseSlot')).toHaveLength(1);
      expect(finishes(fleet.calls(processId, 'finishRun'))).toEqual([
        { status: 'stopped', exitCode: null, error: null },
      ]);
    });
  });

  it('while running stops the trainer, then records stopped', async () => {
    await harness.withProcess(
      'stop-running',
      { watch: 'until-stopped' },
      async ({ processId, handle, fleet, recorded }) => {
        await handle.executeUpdate(startUpdate);
        await recorded('running');
        await handle.executeUpdate(stopUpdate);
        await recorded('stopped');
        expectPath(fleet, processId, ['queued', 'starting', 'running', 'stopping', 'stopped']);
        expect(fleet.calls(processId, 'stopTrainer')).toHaveLength(1);
      },
    );
  });
});

describe('a failure', () => {
  it('of the launch fails the run with the reason, after making sure no trainer was left', async () => {
    await harness.withProcess('launch-fails', { launch: 'fail' }, async ({ processId, handle, fleet, recorded }) => {
      await handle.executeUpdate(startUpdate);
      const snapshot = await recorded('failed');
      expect(snapshot.lastError).toBe('Launch failed: Machine "fake": /bin/sh: train: not found');
      expectPath(fleet, processId, ['queued', 'starting', 'failed']);
      // The patched path 'stop-after-failed-launch': a short stop, with the launch's patience.
      expect(fleet.calls(processId, 'stopTrainer').map((c) => c.args[1])).toEqual([{ unreachableForSeconds: 30 }]);
      expect(fleet.calls(processId, 'runTraining')).toEqual([]);
      expect(fleet.calls(processId, 'releaseSlot')).toHaveLength(1);
    });
  });

  it('of the launch on a machine that cannot be asked leaves the trainer to the reaper, and says so', async () => {
    await harness.withProcess(
      'launch-fails-lost',
      { launch: 'fail', stop: 'machine-lost' },
      async ({ processId, handle, fleet, recorded }) => {
        await handle.executeUpdate(startUpdate);
        const snapshot = await recorded('failed');
        expect(snapshot.lastError).toBe(
          'Launch failed: Machine "fake": /bin/sh: train: not found (the trainer it may have started could not be ' +
            'stopped: Could not stop the trainer: the machine "fake" is unreachable.)',
        );
        expect(finishes(fleet.calls(processId, 'finishRun'))).toEqual([
          expect.objectContaining({ status: 'failed', trainerMayRemain: true }),
        ]);
      },
    );
  });

  it('of the slot (the machine was removed) fails a queued run with the reason', async () => {
    await harness.withProcess(
      'slot-fails',
      { slot: 'machine-removed' },
      async ({ processId, handle, fleet, recorded }) => {
        await handle.executeUpdate(startUpdate);
        const snapshot = await recorded('failed');
        expect(snapshot.lastError).toMatch(/was removed\.$/);
        expectPath(fleet, processId, ['queued', 'failed']);
        expect(fleet.calls(processId, 'launchTrainer')).toEqual([]);
      },
    );
  });

  it('machine lost while running fails the run and leaves the trainer to the reaper, without asking the silent machine', async () => {
    await harness.withProcess(
      'machine-lost',
      { watch: 'machine-lost' },
      async ({ processId, handle, fleet, recorded }) => {
        await handle.executeUpdate(startUpdate);
        const snapshot = await recorded('failed');
        expect(snapshot.lastError).toBe('The machine "fake" has not answered for 5 s.');
        expectPath(fleet, processId, ['queued', 'starting', 'running', 'failed']);
        expect(fleet.calls(processId, 'stopTrainer')).toEqual([]);
        expect(finishes(fleet.calls(processId, 'finishRun'))).toEqual([
          {
            status: 'failed',
            exitCode: null,
            error: 'The machine "fake" has not answered for 5 s.',
            trainerMayRemain: true,
            failureClass: 'machine_lost',
          },
        ]);
      },
    );
  });

  it('of the watch for another reason stops the trainer before the slot is freed', async () => {
    await harness.withProcess(
      'watch-fails',
      { watch: 'output-rejected' },
      async ({ processId, handle, fleet, recorded }) => {
        await handle.executeUpdate(startUpdate);
        const snapshot = await recorded('failed');
        expect(snapshot.lastError).toBe("The trainer's output cannot be read: not a file");
        // The patched path 'stop-after-watch-failure'.
        const names = fleet.calls(processId).map((c) => c.name);
        expect(names.indexOf('stopTrainer')).toBeGreaterThan(-1);
        expect(names.indexOf('stopTrainer')).toBeLessThan(names.indexOf('releaseSlot'));
        expect(finishes(fleet.calls(processId, 'finishRun'))).toEqual([
          { status: 'failed', exitCode: null, error: "The trainer's output cannot be read: not a file" },
        ]);
      },
    );
  });
});

describe('disable and enable', () => {
  it('of a running process stop it first, record it disabled, and enable brings it back stopped', async () => {
    await harness.withProcess(
      'disable-running',
      { watch: 'until-stopped' },
      async ({ processId, handle, fleet, recorded }) => {
        await handle.executeUpdate(startUpdate);
        await recorded('running');
        expect(await handle.executeUpdate(disableUpdate)).toEqual({ status: 'stopping' });
        const disabled = await recorded('disabled');
        expect(disabled.statusBeforeDisable).toBe('stopped');
        expect(fleet.calls(processId, 'stopTrainer')).toHaveLength(1);
        expect(await handle.executeUpdate(enableUpdate)).toEqual({ status: 'stopped' });
        expectPath(fleet, processId, ['queued', 'starting', 'running', 'stopping', 'disabled', 'stopped']);
      },
    );
  });

  it('while a failing stop is handled still disables, and enable brings back the failure with its reason', async () => {
    await harness.withProcess(
      'disable-failing',
      { watch: 'until-stopped', stop: 'machine-lost' },
      async ({ processId, handle, fleet, recorded }) => {
        await handle.executeUpdate(startUpdate);
        await recorded('running');
        await handle.executeUpdate(disableUpdate);
        // The patched path 'disable-after-failure'.
        const disabled = await recorded('disabled');
        expect(disabled).toMatchObject({
          statusBeforeDisable: 'failed',
          lastError: 'The machine "fake" has not answered for 5 s.',
        });
        expect(await handle.executeUpdate(enableUpdate)).toEqual({ status: 'failed' });
        expect((await handle.query(snapshotQuery)).lastError).toBe('The machine "fake" has not answered for 5 s.');
        expect(fleet.lastRecord(processId)?.status).toBe('failed');
      },
    );
  });

  it('of an idle process records disabled at once, and enable restores the status it had', async () => {
    await harness.withProcess('disable-idle', {}, async ({ processId, handle, fleet }) => {
      expect(await handle.executeUpdate(disableUpdate)).toEqual({ status: 'disabled' });
      expect(await handle.executeUpdate(enableUpdate)).toEqual({ status: 'created' });
      expectPath(fleet, processId, ['disabled', 'created']);
    });
  });
});

describe('a delete', () => {
  it('of an idle process removes its run directories, then its data, and ends the workflow', async () => {
    await harness.withProcess('delete-idle', {}, async ({ processId, handle, fleet }) => {
      await handle.executeUpdate(startUpdate);
      await expect.poll(() => fleet.lastRecord(processId)?.status, { timeout: 10_000 }).toBe('completed');
      // The next execution has no run.
      await expect.poll(async () => (await handle.query(snapshotQuery)).runId, { timeout: 10_000 }).toBeNull();
      expect(await handle.executeUpdate(deleteUpdate, { args: [{}] })).toEqual({ status: 'completed' });
      await handle.result();
      const names = fleet.calls(processId).map((c) => c.name);
      expect(names.slice(-2)).toEqual(['removeRunDirs', 'deleteProcessData']);
    });
  });

  it('of a running process stops the trainer first', async () => {
    await harness.withProcess(
      'delete-running',
      { watch: 'until-stopped' },
      async ({ processId, handle, fleet, recorded }) => {
        await handle.executeUpdate(startUpdate);
        await recorded('running');
        expect(await handle.executeUpdate(deleteUpdate, { args: [{}] })).toEqual({ status: 'stopping' });
        await handle.result();
        const names = fleet
          .calls(processId)
          .map((c) => c.name)
          .filter((n) => n !== 'recordStatus');
        expect(names.slice(-5)).toEqual([
          'stopTrainer',
          'releaseSlot',
          'finishRun',
          'removeRunDirs',
          'deleteProcessData',
        ]);
        expect(fleet.lastRecord(processId)?.status).toBe('stopped');
      },
    );
  });

  it('that cannot remove the run directories keeps the process, says why, and a forced delete then goes through', async () => {
    await harness.withProcess('delete-forced', { cleanup: 'fail' }, async ({ processId, handle, fleet }) => {
      await handle.executeUpdate(deleteUpdate, { args: [{}] });
      await expect
        .poll(() => fleet.lastRecord(processId)?.lastError ?? null, { timeout: 10_000 })
        .toBe(
          'Delete failed: ssh: connect to host fake port 22: Connection refused. Retry, or delete with force to ' +
            'leave the files behind.',
        );
      expect(fleet.lastRecord(processId)?.status).toBe('created');
      expect(fleet.calls(processId, 'deleteProcessData')).toEqual([]);
      expect((await harness.env.client.workflow.getHandle(handle.workflowId).describe()).status.name).toBe('RUNNING');

      await handle.executeUpdate(deleteUpdate, { args: [{ force: true }] });
      await handle.result();
      const warning = fleet.calls(processId, 'noteEvent').map((c) => c.args.slice(2));
      expect(warning).toEqual([
        [
          'warn',
          'Forced delete: run directories may remain on the machine (ssh: connect to host fake port 22: Connection ' +
            'refused).',
        ],
      ]);
      expect(fleet.calls(processId, 'deleteProcessData')).toHaveLength(1);
    });
  });

  it('refuses every action, another delete included, while it is under way', async () => {
    await harness.withProcess(
      'delete-under-way',
      { watch: 'until-stopped', stop: 'hold' },
      async ({ processId, handle, fleet, recorded }) => {
        await handle.executeUpdate(startUpdate);
        await recorded('running');
        await handle.executeUpdate(deleteUpdate, { args: [{}] });
        for (const update of [startUpdate, stopUpdate, disableUpdate, enableUpdate]) {
          const refusal = await handle.executeUpdate(update).then(
            () => null,
            (error: unknown) => error,
          );
          expect(refusal).toBeInstanceOf(WorkflowUpdateFailedError);
          expect((refusal as WorkflowUpdateFailedError).cause).toMatchObject({
            type: 'NotAllowed',
            message: 'The process is being deleted.',
          });
        }
        const again = await handle.executeUpdate(deleteUpdate, { args: [{ force: true }] }).then(
          () => null,
          (error: unknown) => error,
        );
        expect((again as WorkflowUpdateFailedError).cause).toMatchObject({
          type: 'NotAllowed',
          message: 'The process is being deleted.',
        });
        fleet.release(processId, 'stop');
        await handle.result();
        expect(fleet.calls(processId, 'deleteProcessData')).toHaveLength(1);
      },
    );
  });
});
