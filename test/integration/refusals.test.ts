// Every action the status table refuses is refused by the workflow itself (its update
// validators), in each status a process can be observed in, with the reason — and the
// refusal changes nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decide, USER_ACTIONS, type ProcessStatus } from '../../domain/status.js';
import { ServiceError } from '../../services/errors.js';
import { act, createProcess, deleteProcess, getProcess } from '../../services/processes.js';
import { localMachine, makeTemplate, processRow, startStack, waitForStatus, type Stack } from '../support/stack.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack?.close();
});

async function expectAllRefusalsIn(
  processId: number,
  status: ProcessStatus,
  ctx: { statusBeforeDisable?: ProcessStatus } = {},
): Promise<void> {
  const before = await processRow(stack, processId);
  const refused = USER_ACTIONS.filter((action) => !decide(status, action, ctx).ok);
  for (const action of refused) {
    const work: Promise<unknown> =
      action === 'delete' ? deleteProcess(stack.deps, processId) : act(stack.deps, processId, action);
    const error = await work.then(
      () => null,
      (e: unknown) => e,
    );
    expect(error, `${action} in ${status}`).toBeInstanceOf(ServiceError);
    expect((error as ServiceError).code, `${action} in ${status}`).toBe('not_allowed');
    const expected = decide(status, action, ctx);
    expect((error as ServiceError).message).toBe(expected.ok ? '' : expected.reason.en);
  }
  const after = await processRow(stack, processId);
  expect(after?.statusVersion).toBe(before?.statusVersion);
  expect(after?.status).toBe(status);
}

describe('the workflow refuses what the status table refuses', () => {
  it('in created, running, stopping, stopped, completed, failed, queued and disabled', async () => {
    const slow = await makeTemplate(stack, {
      command: "trap 'sleep 3; exit 0' TERM; while :; do sleep 0.1; done",
      stopGraceSeconds: 10,
    });
    const quick = await makeTemplate(stack, { command: 'true' });
    const failing = await makeTemplate(stack, { command: 'exit 7' });
    const oneSlot = await localMachine(stack, 1);
    const local = await localMachine(stack);

    const a = await createProcess(stack.deps, { templateId: slow.id, machineId: oneSlot.id });
    await expectAllRefusalsIn(a.id, 'created');
    await act(stack.deps, a.id, 'start');
    await waitForStatus(stack, a.id, 'running');
    await expectAllRefusalsIn(a.id, 'running');

    // A second process on the busy one-slot machine waits as queued.
    const q = await createProcess(stack.deps, { templateId: quick.id, machineId: oneSlot.id });
    await act(stack.deps, q.id, 'start');
    await waitForStatus(stack, q.id, 'queued');
    await expectAllRefusalsIn(q.id, 'queued');

    // The trainer takes 3 s to honour TERM: long enough to be seen stopping.
    await act(stack.deps, a.id, 'stop');
    await waitForStatus(stack, a.id, 'stopping');
    await expectAllRefusalsIn(a.id, 'stopping');
    await waitForStatus(stack, a.id, 'stopped');
    await expectAllRefusalsIn(a.id, 'stopped');

    await waitForStatus(stack, q.id, 'completed');
    await expectAllRefusalsIn(q.id, 'completed');

    const f = await createProcess(stack.deps, { templateId: failing.id, machineId: local.id });
    await act(stack.deps, f.id, 'start');
    await waitForStatus(stack, f.id, 'failed');
    await expectAllRefusalsIn(f.id, 'failed');

    await act(stack.deps, f.id, 'disable');
    await waitForStatus(stack, f.id, 'disabled');
    await expectAllRefusalsIn(f.id, 'disabled', { statusBeforeDisable: 'failed' });
    expect((await act(stack.deps, f.id, 'enable')).status).toBe('failed');
    expect((await getProcess(stack.deps, f.id)).enabled).toBe(true);
  });

  it('answers not found for a process that does not exist', async () => {
    await expect(act(stack.deps, 987654321, 'start')).rejects.toMatchObject({ code: 'not_found' });
  });
});
