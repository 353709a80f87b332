// "Fetch host key" is read by a worker, not by the web server (in production the web
// server may not reach machines): with no worker running the form and the API say so
// within the workflow's 20 s; with a worker in its own process (the real CLI) the
// fingerprint of a real loopback sshd comes back although this process — the web app's —
// cannot read host keys at all, from the machine's own queue when the machine exists.
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createMachine } from '../../services/machines.js';
import { installationOf } from '../../services/installation.js';
import { controlTaskQueue, machineTaskQueue } from '../../workflows/messages.js';
import { makeActor, startApp, viaSession, viaToken, type Actor, type TestApp } from '../support/app.js';
import { startSshd, type TestSshd } from '../support/sshd.js';
import { startStack, startWorkerProcess, TEST_SECRET, uid, waitFor, type Stack } from '../support/stack.js';

// This process is the web server: a host key read here instead of in a worker fails.
vi.mock('../../executors/host-key.js', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../executors/host-key.js')>()),
  fetchHostKeyFingerprint: () => Promise.reject(new Error('the web process tried to read a host key itself')),
}));

let stack: Stack;
let web: TestApp;
let sshd: TestSshd;
let admin: Actor;
let machineId: number;
const workers: ChildProcess[] = [];

beforeAll(async () => {
  // No worker in this process: the only worker is the CLI's, started below.
  stack = await startStack({ worker: false });
  web = await startApp(stack);
  sshd = await startSshd();
  admin = await makeActor(stack, [{ role: 'admin' }], 'hostkey');
  const machine = await createMachine(
    { db: stack.database.db, secret: TEST_SECRET, keysDir: null },
    { name: `ssh-${uid()}`, address: `${sshd.host}:${sshd.port}`, sshUser: sshd.username, privateKey: sshd.privateKey },
  );
  machineId = machine.id;
});
afterAll(async () => {
  for (const w of workers.splice(0)) if (w.exitCode === null && w.signalCode === null) process.kill(-w.pid!, 'SIGKILL');
  await sshd?.stop();
  await web?.close();
  await stack?.close();
});

const address = () => `${sshd.host}:${sshd.port}`;
const viaApi = (query = '', body: unknown = { address: address() }) =>
  viaToken(web.app, admin, { method: 'POST', url: `/api/v1/machines/host-key${query}`, payload: body as object });
const viaForm = (query = '', form: Record<string, string> = { address: address() }) =>
  viaSession(web.app, admin, {
    method: 'POST',
    url: `/machines/host-key${query}`,
    headers: { 'hx-request': 'true' },
    payload: form,
  });

/** The task queues that the fetch-host-key workflows started since `after` scheduled their read on. */
async function readQueuesSince(after: Date): Promise<string[]> {
  return waitFor('the fetch-host-key workflow to be listed', async () => {
    const queues: string[] = [];
    for await (const execution of stack.client.workflow.list({
      query: `WorkflowType = 'fetchHostKeyWorkflow' AND StartTime > '${after.toISOString()}'`,
    })) {
      const history = await stack.client.workflow.getHandle(execution.workflowId).fetchHistory();
      const scheduled = (history.events ?? []).find((e) => e.activityTaskScheduledEventAttributes);
      queues.push(scheduled?.activityTaskScheduledEventAttributes?.taskQueue?.name ?? '(none)');
    }
    return queues.length > 0 ? queues : null;
  });
}

describe('fetch host key', () => {
  it('is documented in the OpenAPI document as read by a worker, with the optional machineId', async () => {
    const doc = (await web.app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json<{
      paths: Record<string, { post: { description: string; parameters?: Array<{ name: string; in: string }> } }>;
    }>();
    const operation = doc.paths['/api/v1/machines/host-key']!.post;
    expect(operation.description).toMatch(/A worker reads it, not the web server/);
    expect(operation.parameters).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: 'machineId', in: 'query' })]),
    );
  });

  it('with no worker running, says so within about 20 s, in English and in Russian', async () => {
    const started = Date.now();
    const [api, form] = await Promise.all([viaApi(), viaForm(`?machine=${machineId}`)]);
    expect(Date.now() - started).toBeLessThan(25_000);
    expect(api.statusCode).toBe(503);
    expect(api.json().error.message).toBe(
      `No worker answered within 20 s, so the host key of ${address()} was not read: ` +
        'start a worker (npm run trainyard -- worker; npm start runs one).',
    );
    expect(form.statusCode).toBe(503);
    expect(form.body).toContain('class="field-error"');
    expect(form.body).toContain(
      `Ни один воркер не ответил за 20 с, ключ хоста ${address()} не прочитан: запустите воркер`,
    );
  }, 60_000);

  describe('with a worker in its own process', () => {
    // It polls the control queue and the machine's (added before it started) once it says it polls.
    beforeAll(async () => {
      await startWorkerProcess(stack, workers);
    }, 120_000);

    it('reads a new address on the control queue: the API answers the sshd fingerprint', async () => {
      const before = new Date();
      const response = await viaApi();
      expect(response.statusCode, response.body).toBe(200);
      expect(response.json()).toEqual({
        address: address(),
        fingerprint: sshd.hostKeyFingerprint,
        keyType: 'ssh-ed25519',
      });
      expect(await readQueuesSince(before)).toEqual([controlTaskQueue(await installationOf(stack.database.db))]);
    });

    it("reads an existing machine's address on that machine's queue, for its form and the API", async () => {
      const before = new Date();
      const form = await viaForm(`?machine=${machineId}`);
      expect(form.statusCode, form.body).toBe(200);
      expect(form.body).toContain(`<code data-fingerprint>${sshd.hostKeyFingerprint}</code>`);
      expect(await readQueuesSince(before)).toEqual([
        machineTaskQueue(machineId, await installationOf(stack.database.db)),
      ]);

      const api = await viaApi(`?machineId=${machineId}`);
      expect(api.statusCode, api.body).toBe(200);
      expect(api.json().fingerprint).toBe(sshd.hostKeyFingerprint);
      expect((await viaApi('?machineId=999999999')).statusCode).toBe(404);
    });

    it('answers an address with no SSH server as today: 400 on the address, in both languages', async () => {
      const api = await viaApi('', { address: '127.0.0.1:1' });
      expect(api.statusCode).toBe(400);
      expect(api.json().error.message).toMatch(/^Cannot read the host key of 127\.0\.0\.1:1: .*ECONNREFUSED/);
      const form = await viaForm('', { address: '127.0.0.1:1' });
      expect(form.statusCode).toBe(422);
      expect(form.body).toMatch(/Не удалось прочитать ключ хоста 127\.0\.0\.1:1: .*ECONNREFUSED/);
    });
  });
});
