// Machines as a running worker sees them: picked up, drained and dropped without a
// restart; probed periodically and on demand; and every workflow findable in the
// Temporal UI by its process, template and machine.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { machines, templates } from '../../db/schema.js';
import { act, createProcess, getProcess } from '../../services/processes.js';
import { installationOf } from '../../services/installation.js';
import { controlTaskQueue, probeMachineWorkflowId, SEARCH_KEYS } from '../../workflows/messages.js';
import { makeTemplate, startStack, uid, waitFor, waitForStatus, type Stack } from '../support/stack.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ probeIntervalMs: 500 });
});
afterAll(async () => {
  await stack?.close();
});

async function addLocalKindMachine(values: Partial<typeof machines.$inferInsert> = {}) {
  const [row] = await stack.database.db
    .insert(machines)
    .values({ name: `machine-${uid()}`, kind: 'local', address: 'local', slots: 1, ...values })
    .returning();
  return row!;
}

describe('machines and the worker', () => {
  it('picks up an added machine, drains a disabled one and drops a removed one, without a restart', async () => {
    const machine = await addLocalKindMachine();
    // No explicit reconcile: the worker's own loop finds it.
    await waitFor(
      'the worker to poll the new machine',
      async () => stack.workers!.machineIds().includes(machine.id),
      10_000,
    );

    await stack.database.db.update(machines).set({ enabled: false }).where(eq(machines.id, machine.id));
    const template = await makeTemplate(stack, { command: 'sleep 1' });
    const process1 = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    await act(stack.deps, process1.id, 'start');
    await new Promise((r) => setTimeout(r, 1500));
    expect((await getProcess(stack.deps, process1.id)).status).toBe('queued');

    await stack.database.db.update(machines).set({ enabled: true }).where(eq(machines.id, machine.id));
    await waitForStatus(stack, process1.id, 'completed', 30_000);

    const other = await addLocalKindMachine();
    await waitFor('the worker to poll it', async () => stack.workers!.machineIds().includes(other.id), 10_000);
    await stack.database.db.delete(machines).where(eq(machines.id, other.id));
    await waitFor('the worker to drop it', async () => !stack.workers!.machineIds().includes(other.id), 10_000);
  });

  it('gives a run on a GPU machine the GPUs of its slot as CUDA_VISIBLE_DEVICES', async () => {
    const machine = await addLocalKindMachine({ slots: 2, gpus: [0, 1, 2, 3] });
    await waitFor('the worker to poll it', async () => stack.workers!.machineIds().includes(machine.id), 10_000);
    const out = path.join(os.tmpdir(), `cuda-${uid()}`);
    // Each run keeps a copy of its template: SLOT is edited between the two starts. Each
    // trainer waits (up to 30 s) until both have written, so the two hold their slots at once.
    const template = await makeTemplate(stack, {
      command: `printf '%s' "$CUDA_VISIBLE_DEVICES" > "${out}-$SLOT"; i=0; while [ ! -e "${out}-a" ] || [ ! -e "${out}-b" ]; do sleep 0.1; i=$((i+1)); [ $i -lt 300 ] || exit 1; done`,
    });
    const first = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    const second = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    await stack.database.db
      .update(templates)
      .set({ env: { SLOT: 'a' } })
      .where(eq(templates.id, template.id));
    await act(stack.deps, first.id, 'start');
    await waitForStatus(stack, first.id, 'running');
    await stack.database.db
      .update(templates)
      .set({ env: { SLOT: 'b' } })
      .where(eq(templates.id, template.id));
    await act(stack.deps, second.id, 'start');
    await waitForStatus(stack, first.id, 'completed', 30_000);
    await waitForStatus(stack, second.id, 'completed', 30_000);
    const seen = [fs.readFileSync(`${out}-a`, 'utf8'), fs.readFileSync(`${out}-b`, 'utf8')].sort();
    expect(seen).toEqual(['0,1', '2,3']);
  });

  it('probes machines periodically and stores the result for the UI', async () => {
    const machine = await addLocalKindMachine();
    const probed = await waitFor(
      'a stored probe',
      async () => {
        const [row] = await stack.database.db.select().from(machines).where(eq(machines.id, machine.id));
        return row?.probe ? (row.probe as { reachable: boolean; freeDiskBytes?: number; gpus?: unknown[] }) : null;
      },
      15_000,
      200,
    );
    expect(probed.reachable).toBe(true);
    expect(probed.freeDiskBytes).toBeGreaterThan(0);
    expect(Array.isArray(probed.gpus)).toBe(true);
  });

  it('probes a machine on demand through its own queue', async () => {
    const machine = await addLocalKindMachine();
    await waitFor('the worker to poll it', async () => stack.workers!.machineIds().includes(machine.id), 10_000);
    const installation = await installationOf(stack.database.db);
    const result = await stack.client.workflow.execute('probeMachineWorkflow', {
      taskQueue: controlTaskQueue(installation),
      workflowId: probeMachineWorkflowId(installation, machine.id, crypto.randomUUID()),
      args: [machine.id, installation],
    });
    expect((result as { reachable: boolean }).reachable).toBe(true);
  });

  it('gives on-call staff the process, template and machine of every workflow in memo and search attributes', async () => {
    const machine = await addLocalKindMachine();
    const template = await makeTemplate(stack, { command: 'true' });
    const process1 = await createProcess(stack.deps, { templateId: template.id, machineId: machine.id });
    await act(stack.deps, process1.id, 'start');
    await waitForStatus(stack, process1.id, 'completed', 30_000);
    const description = await stack.client.workflow.getHandle(process1.workflowId).describe();
    expect(description.memo).toMatchObject({
      processId: process1.id,
      templateId: template.id,
      machineId: machine.id,
      templateName: template.name,
      machineName: machine.name,
    });
    expect(description.typedSearchAttributes.get(SEARCH_KEYS.processId)).toBe(String(process1.id));
    expect(description.typedSearchAttributes.get(SEARCH_KEYS.templateId)).toBe(String(template.id));
    expect(description.typedSearchAttributes.get(SEARCH_KEYS.machineId)).toBe(String(machine.id));
    // The status attribute follows the process, so the UI can list e.g. every failed one.
    await waitFor(
      'the status search attribute',
      async () => {
        const d = await stack.client.workflow.getHandle(process1.workflowId).describe();
        return d.typedSearchAttributes.get(SEARCH_KEYS.status) === 'completed';
      },
      10_000,
    );
  });
});
