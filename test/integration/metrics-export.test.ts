// GET /api/v1/processes/:id/metrics/export end to end: every point a real trainer wrote
// comes back as CSV and as JSON lines (non-finite values kept, a step written twice as
// its latest value), run=N picks the run, a hidden process is 404, and a run of a
// million points is streamed, not loaded.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runs } from '../../db/schema.js';
import { makeActor, startApp, viaSession, viaToken, type Actor, type TestApp } from '../support/app.js';
import { startStack, uid, waitFor, type Stack } from '../support/stack.js';

let stack: Stack;
let t: TestApp;
let admin: Actor;
let dir: string;

beforeAll(async () => {
  stack = await startStack();
  t = await startApp(stack);
  admin = await makeActor(stack, [{ role: 'admin' }], 'export-admin');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-export-'));
});
afterAll(async () => {
  await t?.close();
  await stack?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

type Json = Record<string, any>;

async function call(method: 'GET' | 'POST', url: string, payload?: unknown): Promise<{ status: number; body: Json }> {
  const response = await viaToken(t.app, admin, {
    method,
    url,
    ...(payload === undefined ? {} : { payload: payload as object }),
  });
  return { status: response.statusCode, body: response.body ? response.json<Json>() : {} };
}

const shellLines = (lines: string[]) => `printf '%s\\n' ${lines.map((l) => `'${l}'`).join(' ')}`;

/** A process whose trainer writes `first` on its first run and `later` on every other, to its metrics file. */
async function processWriting(first: string[], later: string[]): Promise<{ id: number; templateId: number }> {
  const marker = path.join(dir, `ran-${uid()}`);
  const command = `if [ -e '${marker}' ]; then ${shellLines(later)}; else touch '${marker}'; ${shellLines(first)}; fi > "$TRAINYARD_METRICS_FILE"`;
  const template = await call('POST', '/api/v1/templates', { name: `export ${uid()}`, command });
  expect(template.status).toBe(201);
  const local = (await call('GET', '/api/v1/machines')).body.items.find((m: Json) => m.name === 'local');
  const proc = await call('POST', '/api/v1/processes', { templateId: template.body.id, machineId: local.id });
  expect(proc.status).toBe(201);
  return { id: proc.body.id, templateId: template.body.id };
}

async function runToCompletion(id: number, runNumber: number): Promise<void> {
  expect((await call('POST', `/api/v1/processes/${id}/start`)).status).toBe(202);
  await waitFor(`run ${runNumber} completed`, async () => {
    const list = (await call('GET', `/api/v1/processes/${id}/runs`)).body.items as Json[];
    return list.find((r) => r.number === runNumber)?.status === 'completed';
  });
  await waitFor(
    'the process to settle',
    async () => (await call('GET', `/api/v1/processes/${id}`)).body.status === 'completed',
  );
}

describe('the metrics export', () => {
  it('gives back every point the trainer wrote, as CSV and JSON lines, for the run asked for', async () => {
    // What Python's json.dumps writes for a diverging loss; step 2 of loss written twice.
    const first = [
      '{"step":1,"loss":0.5,"lr":0.1}',
      '{"step":2,"loss":0.75,"lr":0.1}',
      '{"step":3,"loss":NaN}',
      '{"step":4,"loss":Infinity}',
      '{"step":5,"loss":-Infinity,"a,\\"b\\"":1e-7}',
      '{"step":2,"loss":0.25}',
    ];
    const { id, templateId } = await processWriting(first, ['{"step":1,"loss":9}']);
    await runToCompletion(id, 1);

    const csv = await viaToken(t.app, admin, {
      method: 'GET',
      url: `/api/v1/processes/${id}/metrics/export?run=1&format=csv`,
    });
    expect(csv.statusCode).toBe(200);
    expect(csv.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(csv.headers['content-disposition']).toBe(`attachment; filename="process-${id}-run-1.csv"`);
    expect(csv.body).toBe(
      [
        'series,step,value',
        '"a,""b""",5,1e-7',
        'loss,1,0.5',
        'loss,2,0.25',
        'loss,3,NaN',
        'loss,4,Infinity',
        'loss,5,-Infinity',
        'lr,1,0.1',
        'lr,2,0.1',
        '',
      ].join('\n'),
    );

    const jsonl = await viaToken(t.app, admin, {
      method: 'GET',
      url: `/api/v1/processes/${id}/metrics/export?format=jsonl`,
    });
    expect(jsonl.statusCode).toBe(200);
    expect(jsonl.headers['content-type']).toBe('application/x-ndjson; charset=utf-8');
    expect(jsonl.headers['content-disposition']).toBe(`attachment; filename="process-${id}-run-1.jsonl"`);
    const parsed = jsonl.body
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as Json);
    expect(parsed).toEqual([
      { series: 'a,"b"', step: 5, value: 1e-7 },
      { series: 'loss', step: 1, value: 0.5 },
      { series: 'loss', step: 2, value: 0.25 },
      { series: 'loss', step: 3, value: 'NaN' },
      { series: 'loss', step: 4, value: 'Infinity' },
      { series: 'loss', step: 5, value: '-Infinity' },
      { series: 'lr', step: 1, value: 0.1 },
      { series: 'lr', step: 2, value: 0.1 },
    ]);

    // A second run: omitted run = the latest; run=1 still gives the first.
    await runToCompletion(id, 2);
    const latest = await viaToken(t.app, admin, { method: 'GET', url: `/api/v1/processes/${id}/metrics/export` });
    expect(latest.statusCode).toBe(200);
    expect(latest.headers['content-disposition']).toBe(`attachment; filename="process-${id}-run-2.csv"`);
    expect(latest.body).toBe('series,step,value\nloss,1,9\n');
    const again = await viaToken(t.app, admin, { method: 'GET', url: `/api/v1/processes/${id}/metrics/export?run=1` });
    expect(again.body).toBe(csv.body);
    expect(
      (await viaToken(t.app, admin, { method: 'GET', url: `/api/v1/processes/${id}/metrics/export?run=3` })).statusCode,
    ).toBe(404);

    // A bad format is 400 naming the field.
    const bad = await viaToken(t.app, admin, {
      method: 'GET',
      url: `/api/v1/processes/${id}/metrics/export?format=xlsx`,
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ error: { code: 'invalid' } });

    // A viewer of another template does not see the process at all; one of this template does, by its
    // session too (the page's links).
    const otherTemplate = await call('POST', '/api/v1/templates', { name: `export other ${uid()}`, command: 'true' });
    const outsider = await makeActor(stack, [{ role: 'viewer', templateId: otherTemplate.body.id }], 'export-outsider');
    const hidden = await viaToken(t.app, outsider, {
      method: 'GET',
      url: `/api/v1/processes/${id}/metrics/export?run=1`,
    });
    expect(hidden.statusCode).toBe(404);
    expect(hidden.json()).toMatchObject({ error: { code: 'not_found' } });
    const insider = await makeActor(stack, [{ role: 'viewer', templateId }], 'export-insider');
    const viaPage = await viaSession(t.app, insider, {
      method: 'GET',
      url: `/api/v1/processes/${id}/metrics/export?run=1&format=csv`,
    });
    expect(viaPage.statusCode).toBe(200);
    expect(viaPage.body).toBe(csv.body);

    // The monitoring page links both downloads for the run shown.
    const page = await viaSession(t.app, insider, {
      method: 'GET',
      url: `/training/processes/${id}/monitoring?run=1&lang=en`,
    });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain(`href="/api/v1/processes/${id}/metrics/export?run=1&format=csv">Download CSV</a>`);
    expect(page.body).toContain(
      `href="/api/v1/processes/${id}/metrics/export?run=1&format=jsonl">Download JSON lines</a>`,
    );
    const ru = await viaSession(t.app, insider, { method: 'GET', url: `/training/processes/${id}/monitoring?lang=ru` });
    expect(ru.body).toContain('Скачать CSV');
    expect(ru.body).toContain('Скачать JSON Lines');

    const doc = (await call('GET', '/api/v1/openapi.json')).body;
    const op = doc.paths['/api/v1/processes/{id}/metrics/export'].get;
    expect(Object.keys(op.responses['200'].content)).toEqual(['text/csv', 'application/x-ndjson']);
    expect(op['x-permission']).toBe('processes.view');
  });

  it('streams a million points with the query still open, in bounded memory', async () => {
    const { id } = await processWriting(['{"step":1,"loss":1}'], ['{"step":1,"loss":1}']);
    await runToCompletion(id, 1);
    const [run] = await stack.database.db
      .select({ id: runs.id })
      .from(runs)
      .where(and(eq(runs.processId, id), eq(runs.number, 1)));
    // For the size test only, the points are inserted directly (a trainer writing a million
    // lines would take minutes); every other test takes its points from a trainer's own lines.
    const sql = stack.database.sql;
    const [series] = await sql<
      { id: number }[]
    >`insert into metric_series (run_id, name) values (${run!.id}, 'big') returning id`;
    const POINTS = 1_000_000;
    await sql`insert into metric_points (series_id, step, value) select ${series!.id}, g, g * 0.3711 from generate_series(1, ${POINTS}) as g`;

    await t.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = t.app.server.address() as AddressInfo;
    // A full collection before each reading, so the garbage of batches already sent does not count.
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const live = () => {
      gc();
      const usage = process.memoryUsage();
      return usage.heapUsed + usage.external;
    };
    const baseline = live();
    let heldDuringPause = -1;
    let bytes = 0;
    let chunks = 0;
    let lines = 0;
    let pausedAt = -1;
    let openDuringPause = -1;

    await new Promise<void>((resolve, reject) => {
      const request = http.get(
        {
          host: '127.0.0.1',
          port,
          path: `/api/v1/processes/${id}/metrics/export?format=jsonl`,
          headers: { authorization: `Bearer ${admin.token}` },
        },
        (response) => {
          if (response.statusCode !== 200) {
            response.resume();
            reject(new Error(`expected 200, got ${response.statusCode}`));
            return;
          }
          response.on('data', (chunk: Buffer) => {
            bytes += chunk.length;
            chunks++;
            for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
            if (pausedAt === -1) {
              // Stop reading after the first chunk: a streaming server stops too, its export's
              // transaction still open in PostgreSQL and only a few batches in memory.
              pausedAt = bytes;
              response.pause();
              setTimeout(() => {
                heldDuringPause = live() - baseline;
                sql<{ n: number }[]>`
                select count(*)::int4 as n from pg_stat_activity
                where query like '%from metric_points where series_id%order by step' and xact_start is not null and pid <> pg_backend_pid()`.then(
                  ([row]) => {
                    openDuringPause = row!.n;
                    response.resume();
                  },
                  reject,
                );
              }, 1500);
            }
          });
          response.on('end', () => resolve());
          response.on('error', reject);
        },
      );
      request.on('error', reject);
    });

    expect(lines).toBe(POINTS + 1); // the trainer's own loss point, then the million
    expect(openDuringPause).toBe(1);
    expect(pausedAt).toBeLessThan(bytes / 10);
    expect(chunks).toBeGreaterThan(100);
    // Loading the rows would hold more than the output's size while the client waits; a stream holds a few batches.
    expect(heldDuringPause, `${heldDuringPause} bytes held for ${bytes} bytes sent`).toBeLessThan(bytes / 10);
  }, 180_000);
});
