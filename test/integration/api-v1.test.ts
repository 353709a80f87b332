// The JSON API v1 end to end over HTTP with a bearer token, as automation drives it:
// machine, template, process; start, running, metrics, stop, disable, enable, delete;
// refusals as 409 with the reason; the OpenAPI document matches the routes.
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, machines } from '../../db/schema.js';
import { makeActor, startApp, viaToken, type Actor, type TestApp } from '../support/app.js';
import { EXAMPLE_TRAINER, startStack, TSX, uid, waitFor, type Stack } from '../support/stack.js';

let stack: Stack;
let t: TestApp;
let admin: Actor;

beforeAll(async () => {
  stack = await startStack();
  t = await startApp(stack);
  admin = await makeActor(stack, [{ role: 'admin' }], 'api-admin');
});
afterAll(async () => {
  await t?.close();
  await stack?.close();
});

type Json = Record<string, any>;

async function call(
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
  url: string,
  payload?: unknown,
  actor: Actor = admin,
): Promise<{ status: number; body: Json }> {
  const response = await viaToken(t.app, actor, {
    method,
    url,
    ...(payload === undefined ? {} : { payload: payload as object }),
  });
  return { status: response.statusCode, body: response.body ? response.json<Json>() : {} };
}

const PEM =
  '-----BEGIN OPENSSH PRIVATE KEY-----\n' +
  'b3BlbnNzaC1rZXktdjEAAAAAtopsecretkeymaterial\n' +
  '-----END OPENSSH PRIVATE KEY-----\n';

describe('the JSON API with a token', () => {
  it('adds a machine whose private key is stored only encrypted and never returned', async () => {
    const name = `gpu-${uid()}`;
    const created = await call('POST', '/api/v1/machines', {
      name,
      address: '10.0.0.7:2222',
      sshUser: 'train',
      privateKey: PEM,
      slots: 2,
      gpus: [0, 1],
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      name,
      kind: 'ssh',
      address: '10.0.0.7:2222',
      sshUser: 'train',
      hasPrivateKey: true,
      slots: 2,
      gpus: [0, 1],
      lostTimeoutSeconds: 600,
      enabled: true,
    });
    expect(JSON.stringify(created.body)).not.toContain('topsecret');
    const [row] = await stack.database.db.select().from(machines).where(eq(machines.id, created.body.id));
    expect(row!.privateKeyEncrypted).toMatch(/^v1\./);
    expect(row!.privateKeyEncrypted).not.toContain('topsecret');

    const read = await call('GET', `/api/v1/machines/${created.body.id}`);
    expect(read.status).toBe(200);
    expect(JSON.stringify(read.body)).not.toContain('topsecret');
    const listed = await call('GET', '/api/v1/machines');
    expect(JSON.stringify(listed.body)).not.toContain('topsecret');
    expect(listed.body.items.map((m: Json) => m.name)).toEqual(expect.arrayContaining(['local', name]));

    const patched = await call('PATCH', `/api/v1/machines/${created.body.id}`, { slots: 3, enabled: false });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ slots: 3, enabled: false, hasPrivateKey: true });

    expect((await call('POST', `/api/v1/machines/${created.body.id}/probe`)).status).toBe(409);
    expect((await call('DELETE', `/api/v1/machines/${created.body.id}`)).status).toBe(204);
    expect((await call('GET', `/api/v1/machines/${created.body.id}`)).status).toBe(404);
  });

  it('keeps the built-in local machine: not deleted, not renamed', async () => {
    const local = (await call('GET', '/api/v1/machines')).body.items.find((m: Json) => m.name === 'local');
    const del = await call('DELETE', `/api/v1/machines/${local.id}`);
    expect(del.status).toBe(409);
    expect(del.body.error.message).toMatch(/built-in local machine cannot be deleted/);
    const rename = await call('PATCH', `/api/v1/machines/${local.id}`, { name: 'elsewhere' });
    expect(rename.status).toBe(400);
    expect(rename.body.error.field).toBe('name');
    const other = await call('POST', '/api/v1/machines', {
      name: 'local',
      address: 'h',
      sshUser: 'u',
      privateKey: PEM,
    });
    expect(other.status).toBe(400);
    expect(other.body.error.field).toBe('name');
  });

  it('probes the local machine through the worker that serves it', async () => {
    const local = (await call('GET', '/api/v1/machines')).body.items.find((m: Json) => m.name === 'local');
    const probe = await call('POST', `/api/v1/machines/${local.id}/probe`);
    expect(probe.status).toBe(200);
    expect(probe.body.reachable).toBe(true);
  });

  it('runs a process through its whole life: create, start, running, metrics, stop, disable, enable, delete', async () => {
    const local = (await call('GET', '/api/v1/machines')).body.items.find((m: Json) => m.name === 'local');
    const template = await call('POST', '/api/v1/templates', {
      name: `api e2e ${uid()}`,
      description: 'end to end',
      command: `'${TSX}' '${EXAMPLE_TRAINER}'`,
      params: { step_delay_ms: 25, log_every: 5, eval_every: 20 },
      totalSteps: 2000,
      stopGraceSeconds: 10,
    });
    expect(template.status).toBe(201);
    expect(template.body).toMatchObject({ totalSteps: 2000, stopGraceSeconds: 10, env: {}, workingDir: null });

    const created = await call('POST', '/api/v1/processes', { templateId: template.body.id, machineId: local.id });
    expect(created.status).toBe(201);
    const id = created.body.id as number;
    expect(created.body).toMatchObject({
      templateId: template.body.id,
      machineId: local.id,
      status: 'created',
      enabled: true,
      progress: { step: null, totalSteps: null },
      etaSeconds: null,
      startedAt: null,
      finishedAt: null,
      lastError: null,
    });

    // A refused transition changes nothing and says why.
    const refused = await call('POST', `/api/v1/processes/${id}/enable`);
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('not_allowed');
    expect(refused.body.error.message.length).toBeGreaterThan(5);
    expect((await call('GET', `/api/v1/processes/${id}`)).body.status).toBe('created');

    // The template a process uses cannot go.
    const inUse = await call('DELETE', `/api/v1/templates/${template.body.id}`);
    expect(inUse.status).toBe(409);
    expect(inUse.body.error.message).toMatch(/used by 1 training process/);

    const started = await call('POST', `/api/v1/processes/${id}/start`);
    expect(started.status).toBe(202);
    expect(['queued', 'starting', 'running']).toContain(started.body.status);

    const running = await waitFor('running with progress', async () => {
      const view = (await call('GET', `/api/v1/processes/${id}`)).body;
      return view.status === 'running' && view.progress.step > 20 ? view : null;
    });
    expect(running.progress.totalSteps).toBe(2000);
    expect(running.startedAt).toBeTruthy();
    expect(running.enabled).toBe(true);

    const metrics = await waitFor('lr and loss points', async () => {
      const m = await call('GET', `/api/v1/processes/${id}/metrics?names=lr,loss&maxPoints=2000`);
      return m.status === 200 && m.body.series.lr?.length > 2 && m.body.series.loss?.length > 2 ? m.body : null;
    });
    expect(metrics.run).toBe(1);
    expect(Object.keys(metrics.series).sort()).toEqual(['loss', 'lr']);
    for (const [step, value] of metrics.series.lr) {
      expect(Number.isInteger(step)).toBe(true);
      expect(typeof value === 'number' || ['NaN', 'Infinity', '-Infinity'].includes(value)).toBe(true);
    }

    const stopped = await call('POST', `/api/v1/processes/${id}/stop`);
    expect(stopped.status).toBe(202);
    await waitFor('stopped', async () => (await call('GET', `/api/v1/processes/${id}`)).body.status === 'stopped');

    const disabled = await call('POST', `/api/v1/processes/${id}/disable`);
    expect(disabled.status).toBe(202);
    const view = (await call('GET', `/api/v1/processes/${id}`)).body;
    expect(view).toMatchObject({ status: 'disabled', enabled: false });
    const startDisabled = await call('POST', `/api/v1/processes/${id}/start`);
    expect(startDisabled.status).toBe(409);
    expect(startDisabled.body.error.message).toMatch(/disabled/i);

    expect((await call('POST', `/api/v1/processes/${id}/enable`)).status).toBe(202);
    expect((await call('GET', `/api/v1/processes/${id}`)).body).toMatchObject({ status: 'stopped', enabled: true });

    const runList = await call('GET', `/api/v1/processes/${id}/runs`);
    expect(runList.status).toBe(200);
    expect(runList.body.items).toHaveLength(1);
    expect(runList.body.items[0]).toMatchObject({ number: 1, status: 'stopped' });
    const logs = await call('GET', `/api/v1/processes/${id}/logs`);
    expect(logs.status).toBe(200);
    expect(logs.body.run).toBe(1);
    expect(typeof logs.body.stdout).toBe('string');
    expect((await call('GET', `/api/v1/processes/${id}/logs?run=7`)).status).toBe(404);

    const listed = await call('GET', `/api/v1/templates/${template.body.id}/processes`);
    expect(listed.body.items.map((p: Json) => p.id)).toEqual([id]);
    const filtered = await call('GET', `/api/v1/processes?status=stopped&machineId=${local.id}&limit=500`);
    expect(filtered.body.items.map((p: Json) => p.id)).toContain(id);

    const deleted = await call('DELETE', `/api/v1/processes/${id}`);
    expect(deleted.status).toBe(202);
    await waitFor('the process to be gone', async () => (await call('GET', `/api/v1/processes/${id}`)).status === 404);
    expect((await call('DELETE', `/api/v1/templates/${template.body.id}`)).status).toBe(204);

    // Every step left its audit row (written once the response is sent).
    const wanted = [
      'template.create:ok',
      'process.create:ok',
      'process.enable:refused',
      'template.delete:refused',
      'process.start:ok',
      'process.stop:ok',
      'process.disable:ok',
      'process.start:refused',
      'process.enable:ok',
      'process.delete:ok',
      'template.delete:ok',
    ];
    await waitFor(
      'the audit rows',
      async () => {
        const rows = await stack.database.db.select().from(auditEvents).where(eq(auditEvents.actorUserId, admin.id));
        const actions = rows.map((e) => `${e.action}:${e.outcome}`);
        return wanted.every((w) => actions.includes(w));
      },
      5000,
    );
  });

  it('sends NaN and infinities as strings, as the OpenAPI document says', async () => {
    // A trainer that diverges, writing what Python's json.dumps writes.
    const lines = [
      '{"step":1,"loss":0.5}',
      '{"step":2,"loss":NaN}',
      '{"step":3,"loss":Infinity}',
      '{"step":4,"loss":-Infinity}',
    ];
    const template = await call('POST', '/api/v1/templates', {
      name: `nonfinite ${uid()}`,
      command: `printf '%s\\n' ${lines.map((l) => `'${l}'`).join(' ')} > "$TRAINYARD_METRICS_FILE"`,
    });
    expect(template.status).toBe(201);
    const local = (await call('GET', '/api/v1/machines')).body.items.find((m: Json) => m.name === 'local');
    const proc = (await call('POST', '/api/v1/processes', { templateId: template.body.id, machineId: local.id })).body;
    expect((await call('POST', `/api/v1/processes/${proc.id}/start`)).status).toBe(202);
    await waitFor(
      'completed',
      async () => (await call('GET', `/api/v1/processes/${proc.id}`)).body.status === 'completed',
    );
    const response = await viaToken(t.app, admin, {
      method: 'GET',
      url: `/api/v1/processes/${proc.id}/metrics?names=loss,absent`,
    });
    expect(response.statusCode).toBe(200);
    expect(response.body).toContain('"NaN"');
    expect(response.json()).toEqual({
      run: 1,
      series: {
        loss: [
          [1, 0.5],
          [2, 'NaN'],
          [3, 'Infinity'],
          [4, '-Infinity'],
        ],
        absent: [],
      },
    });
    const doc = (await call('GET', '/api/v1/openapi.json')).body;
    expect(doc.paths['/api/v1/processes/{id}/metrics'].get.description).toMatch(/"NaN", "Infinity" and "-Infinity"/);
    expect(doc.info.description).toMatch(/"NaN", "Infinity" or "-Infinity"/);
  });

  it('answers 404 for unknown ids and 400 naming the field for bad ones', async () => {
    for (const url of [
      '/api/v1/processes/987654',
      '/api/v1/templates/987654',
      '/api/v1/machines/987654',
      '/api/v1/processes/987654/metrics',
      '/api/v1/processes/987654/runs',
      '/api/v1/processes/987654/logs',
      '/api/v1/templates/987654/processes',
    ]) {
      const response = await call('GET', url);
      expect(response.status, url).toBe(404);
      expect(response.body.error.code).toBe('not_found');
    }
    for (const url of [
      '/api/v1/processes/abc',
      '/api/v1/processes/0',
      '/api/v1/processes/99999999999',
      '/api/v1/processes?limit=0',
      '/api/v1/processes?status=running%27%20or%201%3D1',
      '/api/v1/processes?cursor=-1',
    ]) {
      const response = await call('GET', url);
      expect(response.status, url).toBe(400);
      expect(response.body.error.code).toBe('invalid');
      expect(response.body.error.field, url).toBeTruthy();
    }
    expect((await call('POST', '/api/v1/processes/987654/start')).status).toBe(404);
    // Clients that always send Content-Type: application/json may send no body with it.
    const bodiless = await viaToken(t.app, admin, {
      method: 'POST',
      url: '/api/v1/processes/987654/stop',
      headers: { 'content-type': 'application/json' },
    });
    expect(bodiless.statusCode).toBe(404);
    const poisoned = await viaToken(t.app, admin, {
      method: 'POST',
      url: '/api/v1/templates',
      headers: { 'content-type': 'application/json' },
      payload: '{"__proto__":{"admin":true},"name":"p","command":"true"}',
    });
    expect(poisoned.statusCode).toBe(400);
    expect((await call('DELETE', '/api/v1/processes/987654?force=true')).status).toBe(404);
  });

  it('pages through processes with nextCursor', async () => {
    const template = await call('POST', '/api/v1/templates', { name: `paging ${uid()}`, command: 'true' });
    const local = (await call('GET', '/api/v1/machines')).body.items.find((m: Json) => m.name === 'local');
    const ids: number[] = [];
    for (let i = 0; i < 5; i++)
      ids.push(
        (await call('POST', '/api/v1/processes', { templateId: template.body.id, machineId: local.id })).body.id,
      );
    const seen: number[] = [];
    let cursor: number | null = null;
    do {
      const page: { status: number; body: Json } = await call(
        'GET',
        `/api/v1/templates/${template.body.id}/processes?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
      );
      expect(page.body.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.items.map((p: Json) => p.id));
      cursor = page.body.nextCursor;
    } while (cursor !== null);
    expect(seen).toEqual(ids);
  });
});

describe('the OpenAPI document', () => {
  it('describes every /api/v1 route with its schemas, and every $ref resolves', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/api/v1/openapi.json' });
    expect(response.statusCode).toBe(200);
    const doc = response.json<Json>();
    expect(doc.openapi).toBe('3.1.0');
    const routes = t.app
      .printRoutes({ commonPrefix: false })
      .split('\n')
      .filter((line) => line.includes('api/v1'));
    expect(routes.length).toBeGreaterThan(0);
    const operations = Object.entries(doc.paths as Record<string, Json>).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    for (const expected of [
      'GET /api/v1/templates',
      'POST /api/v1/templates',
      'GET /api/v1/templates/{id}',
      'PATCH /api/v1/templates/{id}',
      'DELETE /api/v1/templates/{id}',
      'GET /api/v1/templates/{id}/processes',
      'GET /api/v1/machines',
      'POST /api/v1/machines',
      'GET /api/v1/machines/{id}',
      'PATCH /api/v1/machines/{id}',
      'DELETE /api/v1/machines/{id}',
      'GET /api/v1/processes',
      'POST /api/v1/processes',
      'GET /api/v1/processes/{id}',
      'PATCH /api/v1/processes/{id}',
      'DELETE /api/v1/processes/{id}',
      'POST /api/v1/processes/{id}/start',
      'POST /api/v1/processes/{id}/stop',
      'POST /api/v1/processes/{id}/disable',
      'POST /api/v1/processes/{id}/enable',
      'GET /api/v1/processes/{id}/metrics',
      'GET /api/v1/processes/{id}/runs',
      'GET /api/v1/processes/{id}/logs',
      'POST /api/v1/templates/{id}/sweeps',
      'GET /api/v1/sweeps/{id}',
      'GET /api/v1/users',
      'POST /api/v1/users',
      'PATCH /api/v1/users/{id}',
      'POST /api/v1/users/{id}/password',
      'GET /api/v1/notification-channels',
      'POST /api/v1/notification-channels',
      'DELETE /api/v1/notification-channels/{id}',
      'GET /api/v1/notification-channels/{id}/deliveries',
      'POST /api/v1/notification-channels/{id}/test',
      'GET /api/v1/subscriptions',
      'POST /api/v1/subscriptions',
      'DELETE /api/v1/subscriptions/{id}',
    ]) {
      expect(operations).toContain(expected);
    }
    for (const [name, ops] of Object.entries(doc.paths as Record<string, Json>)) {
      for (const [method, op] of Object.entries(ops)) {
        expect(Object.keys(op.responses).length, `${method} ${name}`).toBeGreaterThan(1);
        if (
          !['get', 'delete'].includes(method) &&
          // Bodiless actions: a probe, a password reset, a test notification.
          !name.endsWith('/probe') &&
          !name.endsWith('/password') &&
          !name.endsWith('/test') &&
          !/(start|stop|disable|enable|invite)$/.test(name)
        )
          expect(op.requestBody, `${method} ${name}`).toBeTruthy();
      }
    }
    const refs = JSON.stringify(doc).match(/"\$ref":"[^"]+"/g) ?? [];
    expect(refs.length).toBeGreaterThan(10);
    for (const ref of refs) {
      const name = /#\/components\/schemas\/([^"]+)/.exec(ref)?.[1];
      expect(doc.components.schemas[name!], ref).toBeTruthy();
    }
    expect(doc.paths['/api/v1/processes/{id}'].delete.parameters).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: 'force', in: 'query' })]),
    );
  });

  it('covers sweeps, the restart policy and notifications (docs/design.md §6.1)', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json<Json>();
    const schemas = doc.components.schemas as Record<string, Json>;
    const bodyOf = (path: string, method: string) =>
      doc.paths[path][method].requestBody.content['application/json'].schema as Json;
    const answerOf = (path: string, method: string, code: string) =>
      doc.paths[path][method].responses[code].content['application/json'].schema as Json;
    const restartFields = ['onFailure', 'backoffSeconds', 'onMachineLost', 'except'];

    // Templates: what is written and what is read carries the restart policy and the stall timeout.
    expect(bodyOf('/api/v1/templates', 'post')).toEqual({ $ref: '#/components/schemas/TemplateCreate' });
    expect(bodyOf('/api/v1/templates/{id}', 'patch')).toEqual({ $ref: '#/components/schemas/TemplatePatch' });
    for (const name of ['TemplateCreate', 'TemplatePatch', 'Template']) {
      const properties = schemas[name]!.properties as Json;
      expect(Object.keys(properties), name).toEqual(expect.arrayContaining(['restart', 'stallSeconds']));
      const restart =
        (properties.restart.anyOf as Json[] | undefined)?.find((s) => s.type === 'object') ?? properties.restart;
      expect(Object.keys(restart.properties as Json), name).toEqual(restartFields);
      // An input schema lists the classes as consts, an output one as an enum.
      const classes = restart.properties.except.items as Json;
      const named = (classes.enum as string[] | undefined) ?? (classes.anyOf as Json[]).map((c) => c.const as string);
      expect(named, name).toEqual(['exit_code', 'oom', 'machine_lost', 'launch_failed', 'stalled']);
    }
    expect(answerOf('/api/v1/templates/{id}', 'get', '200')).toEqual({ $ref: '#/components/schemas/Template' });
    expect(schemas.Template!.required).toEqual(expect.arrayContaining(['restart', 'stallSeconds']));

    // Processes: the fields restarts and sweeps added, always present.
    expect(answerOf('/api/v1/processes/{id}', 'get', '200')).toEqual({ $ref: '#/components/schemas/Process' });
    const processFields = ['name', 'params', 'sweepId', 'attempt', 'maxAttempts', 'stalled'];
    expect(schemas.Process!.required).toEqual(expect.arrayContaining(processFields));
    expect(Object.keys(schemas.Run!.properties as Json)).toEqual(
      expect.arrayContaining(['attempt', 'failureClass', 'stalled']),
    );
    expect(bodyOf('/api/v1/processes/{id}', 'patch')).toEqual({ $ref: '#/components/schemas/ProcessPatch' });
    expect(Object.keys(schemas.ProcessCreate!.properties as Json)).toEqual(
      expect.arrayContaining(['templateId', 'machineId', 'machineIds', 'perMachine', 'params', 'name', 'start']),
    );

    // Sweeps.
    expect(bodyOf('/api/v1/templates/{id}/sweeps', 'post')).toEqual({ $ref: '#/components/schemas/SweepCreate' });
    expect(Object.keys(schemas.SweepCreate!.properties as Json)).toEqual(
      expect.arrayContaining(['machineIds', 'grid', 'random', 'start', 'name']),
    );
    expect(answerOf('/api/v1/templates/{id}/sweeps', 'post', '201')).toEqual({
      $ref: '#/components/schemas/Sweep',
    });
    expect(answerOf('/api/v1/sweeps/{id}', 'get', '200')).toEqual({ $ref: '#/components/schemas/SweepResults' });
    expect(doc.paths['/api/v1/sweeps/{id}'].get.parameters).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: 'metric', in: 'query' })]),
    );

    // Channels, subscriptions, deliveries, and the body a webhook receives with its signature header.
    expect(Object.keys(schemas.NotificationChannelCreate!.properties as Json)).toEqual(
      expect.arrayContaining(['name', 'kind', 'url', 'secret']),
    );
    expect(schemas.NotificationChannel!.properties.secret).toBeUndefined();
    expect(Object.keys(schemas.SubscriptionCreate!.properties as Json)).toEqual(
      expect.arrayContaining(['channelId', 'templateId', 'events']),
    );
    const events = ['completed', 'failed', 'stalled', 'restarted', 'non_finite_loss'];
    expect(schemas.Subscription!.properties.events.items.enum).toEqual(events);
    expect(answerOf('/api/v1/notification-channels/{id}/deliveries', 'get', '200').properties.items.items).toEqual({
      $ref: '#/components/schemas/NotificationDelivery',
    });
    const webhook = doc.webhooks.notification.post as Json;
    expect(webhook.parameters).toEqual([
      expect.objectContaining({ name: 'X-Trainyard-Signature', in: 'header', required: true }),
    ]);
    expect(webhook.requestBody.content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/WebhookEvent',
    });
    expect(schemas.WebhookEvent!.required).toEqual(['id', 'event', 'at', 'process', 'run']);
    expect(schemas.WebhookEvent!.properties.event.enum).toEqual([...events, 'test']);
    expect(schemas.WebhookEvent!.properties.process.required).toEqual(
      expect.arrayContaining(['id', 'name', 'templateId', 'machineId', 'status', 'attempt', 'lastError']),
    );
  });
});
