// The operator pages and their fragments through `inject`: each page and partial answers
// with the exact labels of DESIGN §1–§2, the ☰ menu is the status table filtered by the
// user's permissions, errors come back as fragments to htmx and as pages otherwise, forms
// keep the input and say what is wrong beside the field, hostile names stay text, and
// the live feed sends changed rows to every open page from one shared poller.
import type { AddressInfo } from 'node:net';
import { and, eq } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatusFeed, type Subscriber } from '../../api/plugins/status-feed.js';
import { buildApp } from '../../api/app.js';
import { auditEvents, machines, metricPoints, metricSeries, processes, runs, users } from '../../db/schema.js';
import { menuFor, STATUS_LABELS, type ProcessStatus } from '../../domain/status.js';
import { loadConfig } from '../../lib/config.js';
import { createUser } from '../../services/accounts.js';
import { createSweep } from '../../services/sweeps.js';
import type { ProcessView } from '../../services/processes.js';
import {
  exampleTemplate,
  makeTemplate,
  startStack,
  uid,
  waitFor,
  waitForStatus,
  workflowIdOf,
  type Stack,
} from '../support/stack.js';

const htmlOf = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
const TEMPORAL_UI = 'http://temporal-ui.example:8233';

let stack: Stack;
let app: FastifyInstance;
let local: typeof machines.$inferSelect;

beforeAll(async () => {
  stack = await startStack();
  const config = loadConfig({ LOG_LEVEL: 'warn' }, process.cwd());
  app = await buildApp({
    config,
    db: stack.database.db,
    sql: stack.database.sql,
    secret: 'test-secret-0123456789abcdef',
    temporal: { client: stack.client, connection: stack.connection },
    temporalUiUrl: TEMPORAL_UI,
  });
  const [row] = await stack.database.db.select().from(machines).where(eq(machines.name, 'local'));
  local = row!;
});
afterAll(async () => {
  await app?.close();
  await stack?.close();
});

interface Session {
  cookies: Record<string, string>;
  csrf: string;
  userId: number;
}

async function session(role: string | null, templateId?: number): Promise<Session> {
  const login = `ui-${uid()}`;
  const password = `pw-${uid()}-${uid()}`;
  const user = await createUser(stack.database.db, {
    login,
    password,
    ...(role ? { role } : {}),
    ...(templateId !== undefined ? { templateId } : {}),
  });
  const response = await app.inject({ method: 'POST', url: '/login', payload: { login, password } });
  const cookie = response.cookies.find((c) => c.name === 'ty_session')!.value;
  const any = await app.inject({ method: 'GET', url: '/training/templates', cookies: { ty_session: cookie } });
  const csrf = /name="_csrf" value="([^"]+)"/.exec(any.body)?.[1] ?? '';
  return { cookies: { ty_session: cookie }, csrf, userId: user.id };
}

let adminSession: Session | null = null;
async function admin(): Promise<Session> {
  adminSession ??= await session('admin');
  return adminSession;
}

function get(s: Session, url: string, headers: Record<string, string> = {}) {
  return app.inject({ method: 'GET', url, cookies: s.cookies, headers });
}
function htmx(s: Session, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: Record<string, string>) {
  return app.inject({
    method,
    url,
    cookies: s.cookies,
    headers: { 'hx-request': 'true', 'x-csrf-token': s.csrf },
    ...(payload ? { payload } : {}),
  });
}

/** A process row straight in the database: no workflow, for pages that only read. */
async function rowProcess(templateId: number, values: Partial<typeof processes.$inferInsert> = {}) {
  const [row] = await stack.database.db
    .insert(processes)
    .values({ templateId, machineId: local.id, ...values })
    .returning();
  return row!;
}

async function runWithMetrics(
  processId: number,
  number: number,
  series: Record<string, Array<[number, number]>>,
  finished = true,
) {
  const [run] = await stack.database.db
    .insert(runs)
    .values({
      processId,
      number,
      templateSnapshot: {},
      machineId: local.id,
      status: finished ? 'completed' : 'running',
      startedAt: new Date(),
      finishedAt: finished ? new Date() : null,
      step: 10,
      totalSteps: 100,
    })
    .returning();
  for (const [name, points] of Object.entries(series)) {
    const [s] = await stack.database.db.insert(metricSeries).values({ runId: run!.id, name }).returning();
    if (points.length)
      await stack.database.db
        .insert(metricPoints)
        .values(points.map(([step, value]) => ({ seriesId: s!.id, step, value })));
  }
  return run!;
}

const menuItems = (body: string): string[] => [...body.matchAll(/role="menuitem"[^>]*>([^<]+)</g)].map((m) => m[1]!);
/** The row's ☰ menu: the row carries it closed, pointing at the fragment its items come from when it opens. */
const menuOf = async (s: Session, body: string, processId: number): Promise<string[]> => {
  const row = new RegExp(`<tr id="process-${processId}-row"[\\s\\S]*?</tr>`).exec(body)?.[0] ?? '';
  const url = /<details class="menu" hx-get="([^"]+)"/.exec(row)?.[1];
  if (!url) return [];
  expect(url).toBe(`/training/processes/${processId}/menu`);
  return menuItems((await get(s, url, { 'hx-request': 'true' })).body);
};
const labels = (status: ProcessStatus) => menuFor(status).map((i) => i.label.ru);

describe('the processes page', () => {
  it('shows a template’s processes with the exact Russian labels, and English with ?lang=en', async () => {
    const template = await exampleTemplate(stack);
    const p = await rowProcess(template.id);
    const s = await admin();
    const response = await get(s, `/training/templates/${template.id}/processes`);
    expect(response.statusCode).toBe(200);
    for (const label of [
      'Обучение',
      'Шаблоны обучения',
      'Процессы',
      'Добавить процессы обучения',
      '☰',
      STATUS_LABELS.created.ru,
    ])
      expect(response.body).toContain(label);
    expect(response.body).toContain(`id="process-${p.id}-row"`);
    expect(response.body).toContain(
      `data-events="/training/templates/${template.id}/processes/events?after=${p.id - 1}"`,
    );
    expect(await menuOf(s, response.body, p.id)).toEqual(labels('created'));

    // (Another admin: switching the language is remembered for the user.)
    const enSession = await session('admin');
    const en = await get(enSession, `/training/templates/${template.id}/processes?lang=en`);
    for (const label of ['>Training<', 'Training templates', 'Processes', 'Add training process', '>Created<'])
      expect(en.body).toContain(label);
    expect(menuItems((await get(enSession, `/training/processes/${p.id}/menu`)).body)).toEqual(
      menuFor('created').map((i) => i.label.en),
    );
    expect(menuFor('created').map((i) => i.label.en)).toEqual(
      expect.arrayContaining(['Start', 'Training monitoring', 'Delete']),
    );
    expect(en.body).not.toContain('Добавить процессы обучения');
  });

  it('remembers the language per user: ?lang=en sets the cookie and the user’s locale, which another browser then gets', async () => {
    const template = await exampleTemplate(stack);
    const s = await session('viewer');
    const switched = await get(s, `/training/templates/${template.id}/processes?lang=en`);
    expect(switched.cookies.find((c) => c.name === 'ty_lang')?.value).toBe('en');
    const [user] = await stack.database.db.select().from(users).where(eq(users.id, s.userId));
    expect(user!.locale).toBe('en');
    // Same session, no language cookie (another browser would log in to the same user).
    const later = await get(s, `/training/templates/${template.id}/processes`);
    expect(later.body).toContain('<html lang="en">');
  });

  it('shows no Add button to a viewer, and menus filtered by permission: operator without delete, viewer with monitoring only', async () => {
    const template = await exampleTemplate(stack);
    const p = await rowProcess(template.id, { status: 'stopped' });
    const viewerSession = await session('viewer');
    const viewer = await get(viewerSession, `/training/templates/${template.id}/processes`);
    expect(viewer.statusCode).toBe(200);
    expect(viewer.body).not.toContain('Добавить процессы обучения');
    expect(await menuOf(viewerSession, viewer.body, p.id)).toEqual(['Мониторинг обучения']);
    const operatorSession = await session('operator');
    const operator = await get(operatorSession, `/training/templates/${template.id}/processes`);
    expect(operator.body).toContain('Добавить процессы обучения');
    expect(await menuOf(operatorSession, operator.body, p.id)).toEqual(
      labels('stopped').filter((l) => l !== 'Удалить'),
    );
    const all = await get(await admin(), `/training/templates/${template.id}/processes`);
    expect(await menuOf(await admin(), all.body, p.id)).toEqual(labels('stopped'));
    // Rendered only when asked for: the page itself carries no row's actions.
    expect(all.body).not.toContain('role="menuitem"');
    const menu = await get(await admin(), `/training/processes/${p.id}/menu`);
    expect(menu.body).toContain(`hx-confirm="Удалить процесс #${p.id}`);
  });

  it('answers 404 for a template the user may not see, 403 without processes.view, and sends a visitor to log in', async () => {
    const template = await exampleTemplate(stack);
    const other = await exampleTemplate(stack);
    const scoped = await session('viewer', other.id);
    expect((await get(scoped, `/training/templates/${template.id}/processes`)).statusCode).toBe(404);
    expect((await get(scoped, `/training/templates/${other.id}/processes`)).statusCode).toBe(200);
    expect((await get(await admin(), `/training/templates/999999/processes`)).statusCode).toBe(404);
    const nobody = await session(null);
    const forbidden = await get(nobody, `/training/templates/${template.id}/processes`);
    expect([403, 404]).toContain(forbidden.statusCode);
    expect(forbidden.body).toContain('<html');
    const visitor = await app.inject({ method: 'GET', url: `/training/templates/${template.id}/processes` });
    expect(visitor.statusCode).toBe(303);
    expect(visitor.headers.location).toBe(
      `/login?next=${encodeURIComponent(`/training/templates/${template.id}/processes`)}`,
    );
    const htmxVisitor = await app.inject({
      method: 'GET',
      url: `/training/processes/1/details`,
      headers: { 'hx-request': 'true', 'hx-current-url': `http://x/training/templates/${template.id}/processes` },
    });
    expect(htmxVisitor.headers['hx-redirect']).toBe(
      `/login?next=${encodeURIComponent(`/training/templates/${template.id}/processes`)}`,
    );
  });

  it('pages through many processes with a cursor, newest first, and the feed watches only the page’s window', async () => {
    const template = await exampleTemplate(stack);
    const ids: number[] = [];
    for (let i = 0; i < 52; i++) ids.push((await rowProcess(template.id)).id);
    const newest = [...ids].reverse();
    const first = await get(await admin(), `/training/templates/${template.id}/processes`);
    expect([...first.body.matchAll(/class="process-row[^"]*" data-id="(\d+)"/g)].map((m) => Number(m[1]))).toEqual(
      newest.slice(0, 50),
    );
    expect(first.body).toContain(`href="/training/templates/${template.id}/processes?after=${newest[49]}"`);
    // The first page watches its rows and the new ones above them.
    expect(first.body).toContain(`events?after=${newest[49]! - 1}" data-new-rows="top"`);
    const second = await get(await admin(), `/training/templates/${template.id}/processes?after=${newest[49]}`);
    expect(second.body.match(/class="process-row/g)).toHaveLength(2);
    expect(second.body).toContain(`events?after=${ids[0]! - 1}&amp;upTo=${ids[1]}" data-new-rows="none"`);
  });
});

describe('hostile names', () => {
  it('renders a template, machine and error with markup and quotes as text on every page and fragment', async () => {
    const tag = uid();
    const templateName = `<script>alert("t${tag}")</script> 'q' & "dq"`;
    const machineName = `<img src=x onerror="alert('m${tag}')">`;
    const error = `</pre><script>alert("e${tag}")</script>`;
    const template = await makeTemplate(stack, {
      name: templateName,
      description: `<b>${tag}</b>`,
      command: 'true',
      params: { '<k>': '"v"' },
    });
    const [machine] = await stack.database.db
      .insert(machines)
      .values({ name: machineName, address: `host-${tag}.example`, kind: 'ssh', sshUser: 'u' })
      .returning();
    const p = await rowProcess(template.id, { machineId: machine!.id, status: 'failed', lastError: error });
    await runWithMetrics(p.id, 1, { loss: [[1, 1]] });
    const s = await admin();
    for (const url of [
      `/training/templates/${template.id}/processes`,
      `/training/templates/${template.id}/processes/new`,
      `/training/processes/${p.id}/row`,
      `/training/processes/${p.id}/details`,
      `/training/processes/${p.id}/facts`,
      `/training/processes/${p.id}/monitoring`,
      `/training/templates`,
    ]) {
      const response = await get(s, url, url.endsWith('/new') ? { 'hx-request': 'true' } : {});
      expect(response.statusCode, url).toBe(200);
      expect(response.body, url).not.toContain(`<script>alert("t${tag}")`);
      expect(response.body, url).not.toContain(`<img src=x`);
      expect(response.body, url).not.toContain(`<script>alert("e${tag}")`);
      expect(response.body, url).not.toContain(`<b>${tag}</b>`);
    }
    const page = await get(s, `/training/templates/${template.id}/processes`);
    expect(page.body).toContain(htmlOf(templateName));
    expect(page.body).toContain(htmlOf(machineName));
    const details = await get(s, `/training/processes/${p.id}/details`);
    expect(details.body).toContain(htmlOf(error));
    const form = await get(s, `/training/templates/${template.id}/processes/new`, { 'hx-request': 'true' });
    expect(form.body).toContain(htmlOf(machineName));
    // The monitoring page embeds its data as JSON that cannot close the script element.
    const monitoring = await get(s, `/training/processes/${p.id}/monitoring`);
    const script =
      /<script type="application\/json" id="chart-data">([\s\S]*?)<\/script>/.exec(monitoring.body)?.[1] ?? '';
    expect(script).not.toContain('<');
    expect(monitoring.body).toContain(htmlOf(templateName));
  });
});

describe('adding a process', () => {
  it('adds processes on several machines at once, named, and links a sweep to its page', async () => {
    const template = await exampleTemplate(stack, { learning_rate: 0.01 });
    const [second] = await stack.database.db
      .insert(machines)
      .values({ name: `local-${uid()}`, kind: 'local', address: 'local', slots: 1 })
      .returning();
    const s = await admin();
    const form = new URLSearchParams([
      ['_csrf', s.csrf],
      ['machineId', String(local.id)],
      ['machineId', String(second!.id)],
      ['perMachine', '2'],
      ['name', '<b>lr probe</b>'],
      ['params', '{"learning_rate": 0.5}'],
    ]);
    const added = await app.inject({
      method: 'POST',
      url: `/training/templates/${template.id}/processes`,
      cookies: s.cookies,
      headers: { 'hx-request': 'true', 'content-type': 'application/x-www-form-urlencoded' },
      payload: form.toString(),
    });
    expect(added.statusCode).toBe(200);
    expect(added.body.match(/<tbody/g)).toHaveLength(4);
    expect(added.body).toContain(`<span class="process-name">${htmlOf('<b>lr probe</b>')}</span>`);
    const made = await stack.database.db.select().from(processes).where(eq(processes.templateId, template.id));
    expect(made.map((p) => p.machineId).sort()).toEqual([local.id, local.id, second!.id, second!.id].sort());

    const sweep = await createSweep(stack.deps, template.id, {
      machineIds: [local.id],
      grid: { learning_rate: [0.1, 0.2] },
    });
    const list = await get(s, `/training/templates/${template.id}/processes`);
    expect(list.body).toContain(`href="/training/sweeps/${sweep.id}"`);
    expect(list.body).toContain(`перебор №${sweep.id}`);
    const page = await get(s, `/training/sweeps/${sweep.id}?metric=loss&sort=learning_rate`);
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('Перебор параметров');
    expect(page.body).toContain('<th><a href="/training/sweeps/');
    const order = [...page.body.matchAll(/<tr data-id="(\d+)">/g)].map((m) => Number(m[1]));
    expect(order).toEqual(sweep.processes.map((p) => p.id));
    const reversed = await get(s, `/training/sweeps/${sweep.id}?metric=loss&sort=learning_rate&desc=1`);
    expect([...reversed.body.matchAll(/<tr data-id="(\d+)">/g)].map((m) => Number(m[1]))).toEqual(order.reverse());
    const monitoring = await get(s, `/training/processes/${sweep.processes[0]!.id}/monitoring`);
    expect(monitoring.body).toContain(`<span class="process-name">${htmlOf(sweep.processes[0]!.name)}</span>`);
    const renamed = await app.inject({
      method: 'POST',
      url: `/training/processes/${sweep.processes[0]!.id}/name`,
      cookies: s.cookies,
      payload: { _csrf: s.csrf, name: 'лучший прогон' },
    });
    expect(renamed.statusCode).toBe(303);
    const after = await get(s, `/training/processes/${sweep.processes[0]!.id}/monitoring`);
    expect(after.body).toContain('<span class="process-name">лучший прогон</span>');
    expect(after.body).toContain('id="rename-process"');
    const viewer = await get(await session('viewer'), `/training/processes/${sweep.processes[0]!.id}/monitoring`);
    expect(viewer.body).not.toContain('id="rename-process"');
  });

  it('makes a sweep from the grid field, opens its page, and says in Russian what is wrong with a grid', async () => {
    const template = await exampleTemplate(stack, { learning_rate: 0.01, batch_size: 32 });
    const s = await admin();
    const post = (fields: Array<[string, string]>, headers: Record<string, string> = {}) =>
      app.inject({
        method: 'POST',
        url: `/training/templates/${template.id}/processes`,
        cookies: s.cookies,
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
        payload: new URLSearchParams([['_csrf', s.csrf], ['machineId', String(local.id)], ...fields]).toString(),
      });
    const made = await post([
      ['grid', 'learning_rate = 0.1, 0.2, "x"\r\n\nbatch_size = 8'],
      ['params', '{"learning_rate": 0.5, "batch_size": 64}'],
    ]);
    expect(made.statusCode).toBe(303);
    const sweepId = Number(/^\/training\/sweeps\/(\d+)$/.exec(made.headers.location as string)?.[1]);
    const rows = await stack.database.db.select().from(processes).where(eq(processes.sweepId, sweepId));
    // The grid's values (numbers as numbers, a quoted string as text); the fixed params' keys the grid names give way.
    expect(
      rows.map((p) => p.params).sort((a, b) => String(a.learning_rate).localeCompare(String(b.learning_rate))),
    ).toEqual([
      { learning_rate: 0.1, batch_size: 8 },
      { learning_rate: 0.2, batch_size: 8 },
      { learning_rate: 'x', batch_size: 8 },
    ]);
    expect(rows.every((p) => p.status === 'created')).toBe(true);
    // Through htmx, the browser is sent to the sweep's page.
    const viaHtmx = await post([['grid', '{"learning_rate": [0.3, 0.4]}']], { 'hx-request': 'true' });
    expect(viaHtmx.statusCode).toBe(200);
    expect(viaHtmx.headers['hx-redirect']).toMatch(/^\/training\/sweeps\/\d+$/);
    // Nothing under way: the page's rows do not ask for themselves again.
    const page = await get(s, `/training/sweeps/${sweepId}`);
    expect(page.body).toContain('<tbody id="sweep-rows">');
    const fragment = await get(s, `/training/sweeps/${sweepId}/rows?metric=loss`);
    expect(fragment.statusCode).toBe(200);
    expect(fragment.body.startsWith('<tbody id="sweep-rows">')).toBe(true);
    expect(fragment.body.match(/<tr data-id=/g)).toHaveLength(3);

    for (const [fields, field, text] of [
      [[['grid', 'learning_rate 0.1']], 'grid', 'Строка 1: пишите имя = значение, значение, …'],
      [[['grid', 'momentum = 0.9']], 'grid', 'нет среди гиперпараметров шаблона'],
      [[['grid', '__proto__ = 1\nlearning_rate = 0.1']], 'grid', 'нет среди гиперпараметров шаблона'],
      [
        [
          ['grid', 'learning_rate = 0.1'],
          ['perMachine', '2'],
        ],
        'perMachine',
        'Перебор создаёт по процессу на сочетание',
      ],
    ] as Array<[Array<[string, string]>, string, string]>) {
      const refused = await post(fields);
      expect(refused.statusCode, JSON.stringify(fields)).toBe(422);
      expect(refused.body).toContain(`id="add-process-${field}-error"`);
      expect(refused.body).toContain(text);
    }
    expect((await stack.database.db.select().from(processes).where(eq(processes.templateId, template.id))).length).toBe(
      5,
    );
  });

  it('gives htmx the form alone and a browser without htmx the whole page with the form in it', async () => {
    const template = await exampleTemplate(stack);
    const s = await admin();
    const fragment = await htmx(s, 'GET', `/training/templates/${template.id}/processes/new`);
    expect(fragment.statusCode).toBe(200);
    expect(fragment.body.startsWith('<form id="add-process-form"')).toBe(true);
    for (const label of ['Добавить процессы обучения', 'Адрес целевой машины', 'Сохранить'])
      expect(fragment.body).toContain(label);
    expect(fragment.body).toMatch(new RegExp(`<option value="${local.id}"[^>]*>local</option>`));
    expect(fragment.body).toContain('href="/machines"');
    const page = await get(s, `/training/templates/${template.id}/processes/new`);
    expect(page.body).toContain('<html');
    expect(page.body).toContain('<form id="add-process-form"');
    // Someone who cannot add machines is told whom to ask.
    const operator = await htmx(await session('operator'), 'GET', `/training/templates/${template.id}/processes/new`);
    expect(operator.body).toContain('Попросите администратора');
    expect(operator.body).not.toContain('href="/machines"');
  });

  it('keeps the input and shows each error beside its field', async () => {
    const template = await exampleTemplate(stack);
    const s = await admin();
    const missing = await htmx(s, 'POST', `/training/templates/${template.id}/processes`, {
      machineId: '',
      params: '{"learning_rate": 0.5',
    });
    expect(missing.statusCode).toBe(422);
    expect(missing.headers['hx-retarget']).toBe('#add-process');
    expect(missing.headers['hx-reswap']).toBe('innerHTML');
    expect(missing.body).toContain('id="add-process-machineId-error">Обязательное поле.</p>');
    expect(missing.body).toContain('id="add-process-params-error">Это не JSON:');
    expect(missing.body).toContain(htmlOf('{"learning_rate": 0.5'));
    const array = await htmx(s, 'POST', `/training/templates/${template.id}/processes`, {
      machineId: String(local.id),
      params: '[1]',
    });
    expect(array.body).toContain('id="add-process-params-error">Нужен JSON-объект');
    expect(array.body).toMatch(new RegExp(`<option value="${local.id}" selected>`));
    const unknownMachine = await htmx(s, 'POST', `/training/templates/${template.id}/processes`, {
      machineId: '99999999',
    });
    expect(unknownMachine.statusCode).toBe(422);
    expect(unknownMachine.body).toContain('id="add-process-machineId-error">Не найдено: машина 99999999.');
    // Without htmx: the whole page, with the form and its errors.
    const plain = await app.inject({
      method: 'POST',
      url: `/training/templates/${template.id}/processes`,
      cookies: s.cookies,
      payload: { _csrf: s.csrf, machineId: '' },
    });
    expect(plain.statusCode).toBe(422);
    expect(plain.body).toContain('<html');
    expect(plain.body).toContain('Обязательное поле.');
  });

  it('answers Save with the new row, status Создан, for htmx to append; and redirects a plain form post', async () => {
    const template = await exampleTemplate(stack);
    const s = await admin();
    const response = await htmx(s, 'POST', `/training/templates/${template.id}/processes`, {
      machineId: String(local.id),
      params: '{"seed": 3}',
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers['hx-trigger-after-swap']).toBe('process-created');
    expect(response.body.startsWith('<tbody id="process-')).toBe(true);
    expect(response.body).toContain('>Создан<');
    const id = Number(/data-id="(\d+)"/.exec(response.body)![1]);
    const [row] = await stack.database.db.select().from(processes).where(eq(processes.id, id));
    expect(row!.params).toEqual({ seed: 3 });
    expect((await get(s, `/training/processes/${id}/facts`)).body).toContain(`<code>${htmlOf('{"seed":3}')}</code>`);
    const plain = await app.inject({
      method: 'POST',
      url: `/training/templates/${template.id}/processes`,
      cookies: s.cookies,
      payload: { _csrf: s.csrf, machineId: String(local.id) },
    });
    expect(plain.statusCode).toBe(303);
    expect(plain.headers.location).toBe(`/training/templates/${template.id}/processes`);
  });

  it('refuses a viewer with a 403 fragment for htmx, in #flash', async () => {
    const template = await exampleTemplate(stack);
    const response = await htmx(await session('viewer'), 'POST', `/training/templates/${template.id}/processes`, {
      machineId: String(local.id),
    });
    expect(response.statusCode).toBe(403);
    expect(response.headers['hx-retarget']).toBe('#flash');
    expect(response.body).toContain('class="flash error"');
    expect(response.body).not.toContain('<html');
  });
});

describe('actions and fragments of a live process', () => {
  it('starts, shows details with ~До окончания and the Temporal link, logs, refuses what the status table refuses, stops, deletes', async () => {
    const template = await exampleTemplate(stack, { step_delay_ms: 10 }, { totalSteps: 100_000 });
    const s = await admin();
    const created = await htmx(s, 'POST', `/training/templates/${template.id}/processes`, {
      machineId: String(local.id),
    });
    const id = Number(/data-id="(\d+)"/.exec(created.body)![1]);

    // Refused before the workflow is asked, in the user's language, as a #flash fragment.
    const refused = await htmx(s, 'POST', `/training/processes/${id}/stop`);
    expect(refused.statusCode).toBe(409);
    expect(refused.headers['hx-retarget']).toBe('#flash');
    expect(refused.body).toContain('Нельзя остановить процесс в статусе «Создан».');

    const started = await htmx(s, 'POST', `/training/processes/${id}/start`);
    expect(started.statusCode).toBe(200);
    expect(started.body.startsWith(`<tr id="process-${id}-row"`)).toBe(true);
    expect(started.body).toMatch(/data-version="\d+"/);
    await waitForStatus(stack, id, 'running');
    // Page actions land in the audit log under the same names as the API's.
    const audited = await waitFor(
      'the audit entry',
      async () => {
        const rows = await stack.database.db
          .select()
          .from(auditEvents)
          .where(and(eq(auditEvents.targetId, String(id)), eq(auditEvents.action, 'process.start')));
        return rows[0] ?? null;
      },
      5000,
      50,
    );
    expect(audited).toMatchObject({ targetType: 'process', outcome: 'ok' });
    const facts = await waitFor(
      'an ETA',
      async () => {
        const r = await get(s, `/training/processes/${id}/facts`);
        return /data-fact="eta">~\d/.test(r.body) ? r : null;
      },
      30_000,
      300,
    );
    expect(facts.body).toContain('~До окончания');
    expect(facts.body).toContain(`hx-trigger="refresh, every 2s [document.visibilityState === &#39;visible&#39;]"`);
    const details = await get(s, `/training/processes/${id}/details`);
    expect(details.body.startsWith(`<tr id="process-${id}-details" class="details">`)).toBe(true);
    expect(details.body).toContain(
      `href="${TEMPORAL_UI}/namespaces/default/workflows/${await workflowIdOf(stack, id)}"`,
    );
    expect(details.body).toContain('Показать stdout / stderr');
    const logs = await waitFor(
      'stdout',
      async () => {
        const r = await get(s, `/training/processes/${id}/logs?slot=process-${id}-logs`);
        return r.body.includes('<pre class="log">') ? r : null;
      },
      30_000,
      300,
    );
    expect(logs.body).toContain('<h3>stdout</h3>');
    expect(logs.body).toContain('<h3>stderr</h3>');
    const row = await get(s, `/training/processes/${id}/row`);
    expect(await menuOf(s, row.body, id)).toEqual(labels('running'));

    // The monitoring data polls JSON while the run is live.
    const metrics = await waitFor(
      'points',
      async () => {
        const r = await get(s, `/training/processes/${id}/metrics`);
        const body = r.json<{ live: boolean; runs: Array<{ series: Record<string, unknown[]> }> }>();
        return (body.runs[0]?.series.loss?.length ?? 0) > 0 ? body : null;
      },
      30_000,
      300,
    );
    expect(metrics.live).toBe(true);
    expect(Object.keys(metrics.runs[0]!.series)).toEqual(['lr', 'loss', 'test_accuracy']);

    await htmx(s, 'POST', `/training/processes/${id}/stop`);
    await waitForStatus(stack, id, 'stopped');
    const final = await get(s, `/training/processes/${id}/facts`);
    expect(final.body).toContain('hx-trigger="refresh"');
    expect(final.body).not.toContain('every 2s');
    const after = await get(s, `/training/processes/${id}/metrics`);
    expect(after.json<{ live: boolean }>().live).toBe(false);

    const deleted = await htmx(s, 'DELETE', `/training/processes/${id}`);
    expect(deleted.statusCode).toBe(200);
    expect(deleted.body).toContain('Удаляется…');
    await waitFor(
      'the process to go',
      async () => (await stack.database.db.select().from(processes).where(eq(processes.id, id))).length === 0,
    );
    const gone = await htmx(s, 'GET', `/training/processes/${id}/row`);
    expect(gone.statusCode).toBe(404);
    expect(gone.headers['hx-retarget']).toBe('#flash');
  });

  it('refuses manage and delete actions to a viewer with 403', async () => {
    const template = await exampleTemplate(stack);
    const p = await rowProcess(template.id);
    const viewer = await session('viewer');
    expect((await htmx(viewer, 'POST', `/training/processes/${p.id}/start`)).statusCode).toBe(403);
    expect((await htmx(viewer, 'DELETE', `/training/processes/${p.id}`)).statusCode).toBe(403);
    const operator = await session('operator');
    expect((await htmx(operator, 'DELETE', `/training/processes/${p.id}`)).statusCode).toBe(403);
  });
});

describe('training monitoring', () => {
  it('says a process that never ran has no chart yet', async () => {
    const template = await exampleTemplate(stack);
    const p = await rowProcess(template.id);
    const response = await get(await admin(), `/training/processes/${p.id}/monitoring`);
    expect(response.statusCode).toBe(200);
    expect(response.body).toContain('Мониторинг обучения');
    expect(response.body).toContain('Процесс ещё не запускался');
    expect(response.body).not.toContain('id="chart"');
  });

  it('embeds the chart data with NaN and infinities as strings, warns where the curve breaks, picks and overlays runs', async () => {
    const template = await exampleTemplate(stack);
    const p = await rowProcess(template.id, { status: 'completed' });
    await runWithMetrics(p.id, 1, {
      lr: [
        [1, 0.001],
        [2, 0.002],
      ],
      loss: [
        [1, 0.9],
        [2, 0.8],
      ],
      test_accuracy: [[2, 0.5]],
    });
    await runWithMetrics(p.id, 2, {
      lr: [
        [1, 0.001],
        [2, 0.002],
        [3, 0.003],
      ],
      loss: [
        [1, 0.9],
        [2, Number.NaN],
        [3, Number.POSITIVE_INFINITY],
      ],
      test_accuracy: [[3, 0.6]],
      other: [[1, 5]],
    });
    const s = await admin();
    const page = await get(s, `/training/processes/${p.id}/monitoring`);
    expect(page.statusCode).toBe(200);
    const data = JSON.parse(
      /<script type="application\/json" id="chart-data">([\s\S]*?)<\/script>/.exec(page.body)![1]!,
    ) as {
      live: boolean;
      runs: Array<{ number: number; series: Record<string, Array<[number, number | string]>> }>;
      warnings: string[];
      colors: Record<string, string>;
    };
    expect(data.runs.map((r) => r.number)).toEqual([2]);
    expect(data.runs[0]!.series.loss).toEqual([
      [1, 0.9],
      [2, 'NaN'],
      [3, 'Infinity'],
    ]);
    expect(Object.keys(data.runs[0]!.series)).toEqual(['lr', 'loss', 'test_accuracy']);
    expect(data.live).toBe(false);
    expect(data.colors).toEqual({ lr: '#2a9d4b', loss: '#2f6fdb', test_accuracy: '#d6393f' });
    expect(data.warnings).toEqual([
      'loss = NaN на шаге 2 (прогон 2): кривая там прерывается.',
      'loss = Infinity на шаге 3 (прогон 2): кривая там прерывается.',
    ]);
    expect(page.body).toContain('⚠ loss = NaN на шаге 2 (прогон 2)');
    expect(page.body).toMatch(/<option value="2" selected>Прогон 2 · Завершён/);
    expect(page.body).toContain('Сравнить с');

    const compared = await get(s, `/training/processes/${p.id}/metrics?run=1&compare=2`);
    const body = compared.json<{ runs: Array<{ number: number }> }>();
    expect(body.runs.map((r) => r.number)).toEqual([1, 2]);
    expect((await get(s, `/training/processes/${p.id}/monitoring?run=7`)).statusCode).toBe(404);
    const en = await get(await session('viewer'), `/training/processes/${p.id}/monitoring?lang=en`);
    expect(en.body).toContain('Training monitoring');
    expect(en.body).toContain('loss is NaN at step 2 (run 2): the curve breaks there.');
  });
});

describe('the live feed', () => {
  it('streams changed rows, new processes and deletions to an open page within a second', async () => {
    const template = await exampleTemplate(stack);
    const p = await rowProcess(template.id);
    const s = await admin();
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as AddressInfo).port;
    const controller = new AbortController();
    const response = await fetch(
      `http://127.0.0.1:${port}/training/templates/${template.id}/processes/events?after=0&known=${p.id}:0`,
      {
        headers: { cookie: `ty_session=${s.cookies.ty_session}` },
        signal: controller.signal,
      },
    );
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    const next = async (event: string, timeoutMs = 1000): Promise<string> => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const match = new RegExp(`event: ${event}\\n((?:data: .*\\n)+)\\n`).exec(buffer);
        if (match) {
          buffer = buffer.slice(match.index + match[0].length);
          return match[1]!
            .split('\n')
            .filter(Boolean)
            .map((l) => l.slice(6))
            .join('\n');
        }
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no ${event} event within ${timeoutMs} ms; got ${buffer}`);
        const chunk = await Promise.race([reader.read(), new Promise<null>((r) => setTimeout(() => r(null), left))]);
        if (chunk && !chunk.done) buffer += decoder.decode(chunk.value, { stream: true });
      }
    };

    const changedAt = Date.now();
    await stack.database.db
      .update(processes)
      .set({ status: 'running', statusVersion: 5, updatedAt: new Date() })
      .where(eq(processes.id, p.id));
    const row = await next('row');
    expect(Date.now() - changedAt).toBeLessThan(1000);
    expect(row).toContain(`id="process-${p.id}-row"`);
    expect(row).toContain('data-version="5"');
    expect(row).toContain('>Выполняется<');

    const added = await rowProcess(template.id);
    const block = await next('block');
    expect(block).toContain(`<tbody id="process-${added.id}"`);
    expect(block).toContain('>Создан<');

    await stack.database.db.delete(processes).where(eq(processes.id, p.id));
    expect(await next('gone')).toBe(String(p.id));
    expect(app.statusFeed.size).toBe(1);
    controller.abort();
    // The page went away: its stream is dropped, and with nobody listening the polling stops.
    await waitFor('the stream to be dropped', async () => app.statusFeed.size === 0, 5000, 20);
  });

  it('serves any number of open pages from one poller: ticks do not grow with subscribers', async () => {
    const template = await exampleTemplate(stack);
    const p = await rowProcess(template.id);
    const feed = new StatusFeed(stack.database.db);
    const received: string[][] = [];
    const unsubscribes = Array.from({ length: 25 }, (_, i) => {
      received[i] = [];
      const subscriber: Subscriber = {
        templateId: template.id,
        after: 0,
        upTo: null,
        sent: new Map([[p.id, { version: 0, step: null, at: 0 }]]),
        render: (view: ProcessView, version: number, kind) => `${kind}:${view.id}:${view.status}:${version}`,
        write: (chunk) => received[i]!.push(chunk),
      };
      return feed.subscribe(subscriber);
    });
    await new Promise((r) => setTimeout(r, 1000));
    // About one query every 200 ms, however many pages are open.
    expect(feed.stats.ticks).toBeGreaterThanOrEqual(3);
    expect(feed.stats.ticks).toBeLessThanOrEqual(7);
    await stack.database.db.update(processes).set({ status: 'failed', statusVersion: 9 }).where(eq(processes.id, p.id));
    await waitFor(
      'every page to get the row',
      async () => received.every((r) => r.some((c) => c.includes(`row:${p.id}:failed:9`))),
      2000,
      50,
    );
    for (const unsubscribe of unsubscribes) unsubscribe();
    const ticks = feed.stats.ticks;
    await new Promise((r) => setTimeout(r, 600));
    // Nobody listening: no more queries.
    expect(feed.stats.ticks - ticks).toBeLessThanOrEqual(1);
    feed.close();
  });
});
