// Probing a machine no worker serves says so, within the probe workflow's
// schedule-to-start timeout, instead of hanging; a disabled machine is refused at once.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { makeActor, startApp, viaToken, type TestApp } from '../support/app.js';
import { startStack, uid, type Stack } from '../support/stack.js';

let stack: Stack;
let t: TestApp;

beforeAll(async () => {
  stack = await startStack({ worker: false });
  await stack.startWorker({ serveLocalMachine: false });
  t = await startApp(stack);
});
afterAll(async () => {
  await t?.close();
  await stack?.close();
});

it('answers 503 naming the missing worker for the local machine, and 409 for a disabled machine', async () => {
  const admin = await makeActor(stack, [{ role: 'admin' }], 'probe');
  const machines = (await viaToken(t.app, admin, { method: 'GET', url: '/api/v1/machines' })).json<{
    items: Array<{ id: number; name: string }>;
  }>();
  const local = machines.items.find((m) => m.name === 'local')!;
  const started = Date.now();
  const unserved = await viaToken(t.app, admin, { method: 'POST', url: `/api/v1/machines/${local.id}/probe` });
  expect(unserved.statusCode).toBe(503);
  expect(unserved.json().error.message).toMatch(/No worker serves the local machine.*TRAINYARD_LOCAL_MACHINE=true/);
  expect(Date.now() - started).toBeLessThan(30_000);

  const pem = '-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n';
  const created = await viaToken(t.app, admin, {
    method: 'POST',
    url: '/api/v1/machines',
    payload: { name: `off-${uid()}`, address: '10.0.0.9', sshUser: 'u', privateKey: pem, enabled: false },
  });
  const disabled = await viaToken(t.app, admin, { method: 'POST', url: `/api/v1/machines/${created.json().id}/probe` });
  expect(disabled.statusCode).toBe(409);
  expect(disabled.json().error.message).toMatch(/disabled/);
}, 60_000);
