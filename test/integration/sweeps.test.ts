// Processes made in bulk through the JSON API: several machines at once, a grid sweep run
// to the end by the example trainer (each run gets its own params), names by default
// and by hand, the sweep's table of final and best values, and the refusals.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeActor, startApp, viaSession, viaToken, type Actor, type TestApp } from '../support/app.js';
import { exampleTemplate, localMachine, startStack, uid, waitForStatus, type Stack } from '../support/stack.js';

let stack: Stack;
let t: TestApp;
let admin: Actor;
let localId: number;
let secondId: number;

beforeAll(async () => {
  stack = await startStack();
  t = await startApp(stack);
  admin = await makeActor(stack, [{ role: 'admin' }], 'sweeps-admin');
  localId = (await localMachine(stack)).id;
  secondId = (await localMachine(stack, 2)).id;
});
afterAll(async () => {
  await t?.close();
  await stack?.close();
});

type Json = Record<string, any>;

async function call(method: 'GET' | 'POST' | 'PATCH', url: string, payload?: unknown, actor: Actor = admin) {
  const response = await viaToken(t.app, actor, {
    method,
    url,
    ...(payload === undefined ? {} : { payload: payload as object }),
  });
  return { status: response.statusCode, body: response.body ? response.json<Json>() : {} };
}

/** The params the example trainer says it runs with (its `params: {…}` line). */
async function trainerParams(processId: number): Promise<Json> {
  const logs = await call('GET', `/api/v1/processes/${processId}/logs`);
  const line = /^params: (.*)$/m.exec(logs.body.stdout as string);
  expect(line, `process ${processId} printed its params`).not.toBeNull();
  return JSON.parse(line![1]!) as Json;
}

describe('processes added in bulk', () => {
  it('runs a 3×2 grid sweep over two machines, each run with its own params, and tabulates a metric', async () => {
    const template = await exampleTemplate(stack, { learning_rate: 0.01, batch_size: 32 }, { totalSteps: 60 });
    const made = await call('POST', `/api/v1/templates/${template.id}/sweeps`, {
      machineIds: [localId, secondId],
      grid: { learning_rate: [0.01, 0.003, 0.001], batch_size: [16, 32] },
      start: true,
    });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    expect(made.body).toMatchObject({ templateId: template.id });
    const processes = made.body.processes as Json[];
    // The cartesian product, first key slowest, spread round robin.
    expect(processes.map((p) => [p.params.learning_rate, p.params.batch_size])).toEqual([
      [0.01, 16],
      [0.01, 32],
      [0.003, 16],
      [0.003, 32],
      [0.001, 16],
      [0.001, 32],
    ]);
    expect(processes.map((p) => p.machineId)).toEqual([localId, secondId, localId, secondId, localId, secondId]);
    expect(processes.map((p) => p.name)).toEqual([
      `${template.name} batch_size=16`,
      template.name,
      `${template.name} learning_rate=0.003 batch_size=16`,
      `${template.name} learning_rate=0.003`,
      `${template.name} learning_rate=0.001 batch_size=16`,
      `${template.name} learning_rate=0.001`,
    ]);
    for (const p of processes) {
      expect(p.sweepId).toBe(made.body.id);
      // Effective params: the template's with the point's over them.
      expect(p.params).toMatchObject({ step_delay_ms: 0, log_every: 10, eval_every: 50 });
      expect(['starting', 'queued', 'running', 'completed']).toContain(p.status);
    }

    for (const p of processes) {
      await waitForStatus(stack, p.id as number, 'completed', 120_000);
      const seen = await trainerParams(p.id as number);
      expect(seen).toMatchObject({ learning_rate: p.params.learning_rate, batch_size: p.params.batch_size });
      const runs = await call('GET', `/api/v1/processes/${p.id}/runs`);
      expect(runs.body.items[0].params).toMatchObject({
        learning_rate: p.params.learning_rate,
        batch_size: p.params.batch_size,
      });
    }

    const accuracy = await call('GET', `/api/v1/sweeps/${made.body.id}?metric=test_accuracy`);
    expect(accuracy.status).toBe(200);
    expect(accuracy.body).toMatchObject({ id: made.body.id, templateId: template.id, name: expect.any(String) });
    expect(accuracy.body.differing).toEqual(['batch_size', 'learning_rate']);
    for (const p of accuracy.body.processes as Json[]) {
      expect(typeof p.final).toBe('number');
      expect(p.best).toBeGreaterThanOrEqual(p.final as number);
      expect(p.name).toBe(processes.find((q) => q.id === p.id)!.name);
    }
    const loss = await call('GET', `/api/v1/sweeps/${made.body.id}?metric=loss`);
    for (const p of loss.body.processes as Json[]) expect(p.best).toBeLessThanOrEqual(p.final as number);
    const none = await call('GET', `/api/v1/sweeps/${made.body.id}?metric=no_such_series`);
    expect((none.body.processes as Json[]).every((p) => p.final === null && p.best === null)).toBe(true);
  });

  it('samples the same random points for the same seed', async () => {
    const template = await exampleTemplate(stack, { learning_rate: 0.01, hidden: 16 });
    const spec = {
      machineIds: [localId],
      random: { n: 4, seed: 1234, space: { learning_rate: { logUniform: [1e-4, 1e-1] }, hidden: { choice: [8, 32] } } },
    };
    const a = await call('POST', `/api/v1/templates/${template.id}/sweeps`, spec);
    const b = await call('POST', `/api/v1/templates/${template.id}/sweeps`, spec);
    expect(a.status).toBe(201);
    const points = (s: Json) => (s.processes as Json[]).map((p) => [p.params.learning_rate, p.params.hidden]);
    expect(points(b.body)).toEqual(points(a.body));
    expect(new Set(points(a.body).map((p) => p[0])).size).toBe(4);
    for (const [lr] of points(a.body)) expect(lr).toBeGreaterThanOrEqual(1e-4);
    expect((a.body.processes as Json[]).every((p) => p.status === 'created')).toBe(true);
  });

  it('makes perMachine processes on each machine with one name, and keeps the single form as it was', async () => {
    const template = await exampleTemplate(stack, { learning_rate: 0.01 });
    const many = await call('POST', '/api/v1/processes', {
      templateId: template.id,
      machineIds: [localId, secondId],
      perMachine: 2,
      params: { learning_rate: 0.002 },
    });
    expect(many.status, JSON.stringify(many.body)).toBe(201);
    const items = many.body.items as Json[];
    expect(items.map((p) => p.machineId)).toEqual([localId, localId, secondId, secondId]);
    expect(items.every((p) => p.name === `${template.name} learning_rate=0.002` && p.sweepId === null)).toBe(true);
    expect(items.every((p) => p.status === 'created' && p.params.learning_rate === 0.002)).toBe(true);

    const one = await call('POST', '/api/v1/processes', { templateId: template.id, machineId: localId });
    expect(one.status).toBe(201);
    expect(one.body).toMatchObject({ templateId: template.id, machineId: localId, name: template.name, sweepId: null });
    expect(one.body.items).toBeUndefined();
  });

  it('stores hostile names verbatim and renames, an empty name going back to the default', async () => {
    const template = await exampleTemplate(stack);
    const hostile = `<script>alert(1)</script> '; DROP TABLE processes; -- $(touch /tmp/x) ${uid()} ✓`;
    const made = await call('POST', '/api/v1/processes', {
      templateId: template.id,
      machineIds: [localId],
      name: hostile,
    });
    expect(made.status).toBe(201);
    const id = made.body.items[0].id as number;
    expect((await call('GET', `/api/v1/processes/${id}`)).body.name).toBe(hostile);
    const renamed = await call('PATCH', `/api/v1/processes/${id}`, { name: 'lr probe' });
    expect(renamed.status).toBe(200);
    expect(renamed.body.name).toBe('lr probe');
    expect((await call('PATCH', `/api/v1/processes/${id}`, { name: '' })).body.name).toBe(template.name);
    const bad = await call('PATCH', `/api/v1/processes/${id}`, { name: 'a\u0000b' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.field).toBe('name');
  });

  it('refuses unknown keys, empty lists, too many processes and missing machines, naming the field', async () => {
    const template = await exampleTemplate(stack, { learning_rate: 0.01 });
    const sweep = (body: Json) => call('POST', `/api/v1/templates/${template.id}/sweeps`, body);
    const cases: [Json, string][] = [
      [{ machineIds: [localId], grid: { momentum: [0.9] } }, 'grid'],
      [{ machineIds: [localId], grid: { learning_rate: [] } }, 'grid'],
      [{ machineIds: [localId] }, 'grid'],
      [{ machineIds: [localId], random: { n: 0, seed: 1, space: { learning_rate: { uniform: [0, 1] } } } }, 'random'],
      [{ machineIds: [localId], random: { n: 501, seed: 1, space: { learning_rate: { uniform: [0, 1] } } } }, 'random'],
      [
        { machineIds: [localId], random: { n: 2, seed: 1, space: { learning_rate: { logUniform: [0, 1] } } } },
        'random',
      ],
      [{ machineIds: [localId], random: { n: 2, seed: 1, space: { nope: { choice: [1] } } } }, 'random'],
      [{ machineIds: [localId], grid: { learning_rate: Array.from({ length: 501 }, (_, i) => i) } }, 'grid'],
      [{ machineIds: [999_999], grid: { learning_rate: [0.1] } }, 'machineIds'],
      [{ machineIds: [], grid: { learning_rate: [0.1] } }, 'machineIds'],
    ];
    for (const [body, field] of cases) {
      const answer = await sweep(body);
      expect(answer.status, JSON.stringify(body)).toBe(400);
      expect(answer.body.error.field, JSON.stringify(body)).toMatch(new RegExp(`^${field}\\b`));
    }
    const multi = (body: Json) => call('POST', '/api/v1/processes', { templateId: template.id, ...body });
    expect((await multi({ machineIds: [localId], params: { momentum: 1 } })).body.error.field).toBe('params');
    expect((await multi({ machineIds: [localId], perMachine: 501 })).body.error.field).toBe('perMachine');
    expect((await multi({ machineIds: [localId, secondId], perMachine: 251 })).body.error.field).toBe('perMachine');
    expect((await multi({ machineId: localId, machineIds: [localId] })).body.error.field).toBe('machineId');
    expect((await multi({ machineId: localId, start: true })).body.error.field).toBe('start');
    expect((await multi({ machineIds: [localId], name: 'x'.repeat(201) })).body.error.field).toBe('name');
    expect((await call('GET', '/api/v1/sweeps/999999')).status).toBe(404);
    expect((await call('POST', '/api/v1/templates/999999/sweeps', cases[0]![0])).status).toBe(404);
  });

  it('hides a sweep of a template the caller may not view', async () => {
    const template = await exampleTemplate(stack, { learning_rate: 0.01 });
    const made = await call('POST', `/api/v1/templates/${template.id}/sweeps`, {
      machineIds: [localId],
      grid: { learning_rate: [0.1] },
    });
    const other = await exampleTemplate(stack);
    const scoped = await makeActor(stack, [{ role: 'viewer', templateId: other.id }], `scoped-${uid()}`);
    expect((await call('GET', `/api/v1/sweeps/${made.body.id}`, undefined, scoped)).status).toBe(404);
  });
});

describe('the sweep page', () => {
  it('sorts by a metric without scripts, and compares the ticked runs with the monitoring chart’s own points', async () => {
    const template = await exampleTemplate(stack, { learning_rate: 0.01 }, { totalSteps: 60 });
    const made = await call('POST', `/api/v1/templates/${template.id}/sweeps`, {
      machineIds: [localId],
      grid: { learning_rate: [0.3, 0.01, 0.001] },
      start: true,
    });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    const ids = (made.body.processes as Json[]).map((p) => p.id as number);
    for (const id of ids) await waitForStatus(stack, id, 'completed', 120_000);
    const page = (query: string) =>
      viaSession(t.app, admin, { method: 'GET', url: `/training/sweeps/${made.body.id}?${query}` });
    const rowsOf = (body: string) => [...body.matchAll(/<tr data-id="(\d+)">/g)].map((m) => Number(m[1]));

    // Sorted by the final loss, lowest first, then highest first: the order the API's values give.
    const api = await call('GET', `/api/v1/sweeps/${made.body.id}?metric=loss`);
    const byFinal = (api.body.processes as Json[])
      .slice()
      .sort((a, b) => (a.final as number) - (b.final as number))
      .map((p) => p.id as number);
    expect(new Set((api.body.processes as Json[]).map((p) => p.final)).size).toBe(3);
    const ascending = await page('metric=loss&sort=final');
    expect(ascending.statusCode).toBe(200);
    expect(rowsOf(ascending.body)).toEqual(byFinal);
    expect(rowsOf((await page('metric=loss&sort=final&desc=1')).body)).toEqual([...byFinal].reverse());
    // The sort links keep the ticked processes.
    const ticked = await page(`metric=loss&sort=final&compare=${ids[0]}&compare=${ids[2]}`);
    expect(ticked.body).toContain(`&amp;compare=${ids[0]}&amp;compare=${ids[2]}`);
    for (const id of ids)
      expect(ticked.body.includes(`value="${id}" aria-label="Сравнить #${id}" checked`)).toBe(id !== ids[1]);

    // The curves embedded in the page and answered as JSON are the monitoring chart's points of the latest run.
    const embedded = JSON.parse(
      /<script type="application\/json" id="compare-data">(.*?)<\/script>/s.exec(ticked.body)![1]!,
    ) as Json;
    expect(embedded.metric).toBe('loss');
    expect((embedded.curves as Json[]).map((c) => c.processId)).toEqual([ids[0], ids[2]]);
    const curves = await viaSession(t.app, admin, {
      method: 'GET',
      url: `/training/sweeps/${made.body.id}/curves?metric=loss&compare=${ids[0]}&compare=${ids[2]}`,
    });
    expect(curves.statusCode).toBe(200);
    expect(curves.json<Json>().curves).toEqual(embedded.curves);
    for (const curve of embedded.curves as Json[]) {
      const monitoring = await viaSession(t.app, admin, {
        method: 'GET',
        url: `/training/processes/${curve.processId}/metrics`,
      });
      const run = monitoring.json<Json>().runs[0] as Json;
      expect(curve.run).toBe(run.number);
      expect(curve.points.length).toBeGreaterThan(1);
      expect(curve.points).toEqual(run.series.loss);
    }
    // A single box is a list of one; nothing ticked hides the chart.
    const one = await viaSession(t.app, admin, {
      method: 'GET',
      url: `/training/sweeps/${made.body.id}/curves?metric=loss&compare=${ids[1]}`,
    });
    expect((one.json<Json>().curves as Json[]).map((c) => c.processId)).toEqual([ids[1]]);
    expect((await page('metric=loss')).body).toContain('id="compare-section" hidden');

    // Ids outside the sweep, or not ids at all, are refused with the reason.
    const other = await viaSession(t.app, admin, {
      method: 'GET',
      url: `/training/sweeps/${made.body.id}/curves?compare=999999`,
    });
    expect(other.statusCode).toBe(404);
    expect(other.body).toContain('Процесса 999999 нет в этом переборе.');
    const bad = await viaSession(t.app, admin, {
      method: 'GET',
      url: `/training/sweeps/${made.body.id}/curves?compare=1%3Bdrop`,
    });
    expect(bad.statusCode).toBe(400);
    const many = Array.from({ length: 21 }, (_, i) => `compare=${i + 1}`).join('&');
    expect(
      (await viaSession(t.app, admin, { method: 'GET', url: `/training/sweeps/${made.body.id}/curves?${many}` }))
        .statusCode,
    ).toBe(400);
  });
});
