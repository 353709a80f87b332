import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

describe('the real Temporal dev server', () => {
  let connection: Connection;
  let native: NativeConnection;

  beforeAll(async () => {
    connection = await Connection.connect({ address: inject('temporalAddress') });
    native = await NativeConnection.connect({ address: inject('temporalAddress') });
  });
  afterAll(async () => {
    await connection?.close();
    await native?.close();
  });

  it('runs a workflow started by the client on a worker and returns its result', async () => {
    const taskQueue = `roundtrip-${randomUUID()}`;
    const worker = await Worker.create({
      connection: native,
      taskQueue,
      workflowsPath: fileURLToPath(new URL('./fixtures/echo-workflow.ts', import.meta.url)),
      activities: { shout: async (text: string) => text.toUpperCase() },
    });
    const client = new Client({ connection });
    const result = await worker.runUntil(
      client.workflow.execute('echoWorkflow', {
        taskQueue,
        workflowId: `echo-${randomUUID()}`,
        args: ['hello trainyard'],
      }),
    );
    expect(result).toBe('HELLO TRAINYARD (workflow)');
  });

  it('has the Trainyard search attributes registered', async () => {
    const attributes = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
    expect(Object.keys(attributes.customAttributes ?? {})).toEqual(
      expect.arrayContaining(['TrainyardProcessId', 'TrainyardTemplateId', 'TrainyardMachineId', 'TrainyardStatus']),
    );
  });
});
