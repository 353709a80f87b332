// Every action the status table refuses, in every status: the workflow's update validators
// refuse it with the table's reason (NotAllowed, both languages) and change nothing.
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decide, STATUSES, USER_ACTIONS, type ProcessStatus, type UserAction } from '../../domain/status.js';
import {
  deleteUpdate,
  disableUpdate,
  enableUpdate,
  snapshotQuery,
  startUpdate,
  stopUpdate,
} from '../../workflows/messages.js';
import type { FakeScript } from './fake-activities.js';
import { WorkflowHarness, type TestProcess } from './harness.js';

let harness: WorkflowHarness;
beforeAll(async () => {
  harness = await WorkflowHarness.start();
});
afterAll(async () => {
  await harness?.stop();
});

function update(handle: TestProcess['handle'], action: UserAction): Promise<unknown> {
  switch (action) {
    case 'start':
      return handle.executeUpdate(startUpdate);
    case 'stop':
      return handle.executeUpdate(stopUpdate);
    case 'disable':
      return handle.executeUpdate(disableUpdate);
    case 'enable':
      return handle.executeUpdate(enableUpdate);
    case 'delete':
      return handle.executeUpdate(deleteUpdate, { args: [{}] });
  }
}

/** How a new process reaches each status with the fakes: the script, then the actions. */
const ROUTES: Record<
  ProcessStatus,
  { script: Partial<FakeScript>; actions: Array<{ action: UserAction; then: ProcessStatus }> }
> = {
  created: { script: {}, actions: [] },
  queued: { script: { slot: 'hold' }, actions: [{ action: 'start', then: 'queued' }] },
  starting: { script: { launch: 'hold' }, actions: [{ action: 'start', then: 'starting' }] },
  running: { script: { watch: 'until-stopped' }, actions: [{ action: 'start', then: 'running' }] },
  stopping: {
    script: { watch: 'until-stopped', stop: 'hold' },
    actions: [
      { action: 'start', then: 'running' },
      { action: 'stop', then: 'stopping' },
    ],
  },
  stopped: {
    script: { watch: 'until-stopped' },
    actions: [
      { action: 'start', then: 'running' },
      { action: 'stop', then: 'stopped' },
    ],
  },
  completed: { script: {}, actions: [{ action: 'start', then: 'completed' }] },
  failed: { script: { launch: 'fail' }, actions: [{ action: 'start', then: 'failed' }] },
  disabled: { script: {}, actions: [{ action: 'disable', then: 'disabled' }] },
};

describe('the workflow refuses what the status table refuses', () => {
  it.each(STATUSES.map((status) => [status]))('%s', async (status) => {
    const route = ROUTES[status];
    await harness.withProcess(`refusals-${status}`, route.script, async ({ handle, recorded }) => {
      for (const step of route.actions) {
        await update(handle, step.action);
        await recorded(step.then);
      }
      const before = await handle.query(snapshotQuery);
      expect(before.status).toBe(status);

      const refused = USER_ACTIONS.filter((action) => !decide(status, action).ok);
      expect(refused.length, 'the table refuses something in every status').toBeGreaterThan(0);
      for (const action of refused) {
        const decision = decide(status, action);
        if (decision.ok) throw new Error('unreachable');
        const error = await update(handle, action).then(
          () => null,
          (e: unknown) => e,
        );
        expect(error, `${action} in ${status}`).toBeInstanceOf(WorkflowUpdateFailedError);
        const cause = (error as WorkflowUpdateFailedError).cause;
        expect(cause).toBeInstanceOf(ApplicationFailure);
        expect(cause).toMatchObject({ type: 'NotAllowed', message: decision.reason.en, nonRetryable: true });
        expect((cause as ApplicationFailure).details).toEqual([decision.reason]);
      }
      // Nothing changed: the refusals left no trace in the state or the mirror.
      expect(await handle.query(snapshotQuery)).toEqual(before);
    });
  });
});
