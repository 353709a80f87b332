// The Target machines page and the template add / edit pages through `inject`: health
// from the stored probe, the host-key "fetch and confirm" step against a real sshd, forms
// that keep the input and put each error beside its field, permissions, hostile names.
import { eq } from 'drizzle-orm';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { machines, templates } from '../../db/schema.js';
import { makeActor, startApp, viaSession, type Actor, type TestApp } from '../support/app.js';
import { startSshd, type TestSshd } from '../support/sshd.js';
import { startStack, uid, type Stack } from '../support/stack.js';

const htmlOf = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');

let stack: Stack;
let web: TestApp;
let sshd: TestSshd;
let admin: Actor;
let viewer: Actor;
let operator: Actor;

beforeAll(async () => {
  stack = await startStack();
  web = await startApp(stack);
  sshd = await startSshd();
  admin = await makeActor(stack, [{ role: 'admin' }], 'admin');
  viewer = await makeActor(stack, [{ role: 'viewer' }], 'viewer');
  operator = await makeActor(stack, [{ role: 'operator' }], 'operator');
});
afterAll(async () => {
  await sshd?.stop();
  await web?.close();
  await stack?.close();
});

const page = (actor: Actor | null, url: string) => viaSession(web.app, actor, { method: 'GET', url });
const htmx = (actor: Actor, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: Record<string, string>) =>
  viaSession(web.app, actor, { method, url, headers: { 'hx-request': 'true' }, ...(payload ? { payload } : {}) });
const fieldError = (response: LightMyRequestResponse, prefix: string, field: string) =>
  new RegExp(`id="${prefix}-${field}-error">([^<]*)<`).exec(response.body)?.[1];

describe('the Target machines page', () => {
  it('lists machines with their health from the stored probe, for machines.view', async () => {
    const name = `probed-${uid()}`;
    // Disabled, so the workers' periodic probe leaves the stored results alone.
    await stack.database.db.insert(machines).values([
      {
        name,
        enabled: false,
        address: `ok-${uid()}.example`,
        sshUser: 'u',
        probe: {
          reachable: true,
          freeDiskBytes: 50 * 1024 ** 3,
          gpus: [{ index: 0, name: 'A100', memoryMiB: 81920 }],
          probedAt: new Date().toISOString(),
        },
        probedAt: new Date(),
      },
      {
        name: `down-${uid()}`,
        enabled: false,
        address: `down-${uid()}.example`,
        sshUser: 'u',
        probe: { reachable: false, error: 'connect ECONNREFUSED', probedAt: new Date().toISOString() },
        probedAt: new Date(),
      },
    ]);
    const response = await page(viewer, '/machines');
    expect(response.statusCode).toBe(200);
    expect(response.body).toContain('<h1>Целевые машины</h1>');
    expect(response.body).toMatch(/class="topbar"[\s\S]*href="\/machines" class="current">Целевые машины</);
    expect(response.body).toContain('<span class="health ok"');
    expect(response.body).toContain('свободно 50.0 GiB · GPU: 1');
    expect(response.body).toContain('<span class="health down"');
    expect(response.body).toContain('connect ECONNREFUSED');
    expect(response.body).toContain('>local</td>');
    // A viewer sees no buttons that would only be refused.
    expect(response.body).not.toContain('Добавить машину');
    expect(response.body).not.toContain('hx-delete="/machines/');
    const managed = await page(admin, '/machines');
    expect(managed.body).toContain('Добавить машину');
    expect(managed.body).toContain('>Проверить<');
  });

  it('is forbidden without machines.view, and hidden from the navigation', async () => {
    const nobody = await makeActor(stack, [], 'nobody');
    expect((await page(nobody, '/machines')).statusCode).toBe(403);
    const templatesPage = await page(nobody, '/training/templates');
    expect(templatesPage.body).not.toContain('href="/machines"');
  });

  it('fetches a host key for the operator to confirm, and says why when it cannot', async () => {
    const found = await htmx(admin, 'POST', '/machines/host-key', { address: `${sshd.host}:${sshd.port}` });
    expect(found.statusCode).toBe(200);
    expect(found.body).toContain(`<code data-fingerprint>${sshd.hostKeyFingerprint}</code>`);
    expect(found.body).toContain(`data-fingerprint-value="${sshd.hostKeyFingerprint}"`);
    expect(found.body).toContain('Подтвердить и использовать этот отпечаток');
    const bad = await htmx(admin, 'POST', '/machines/host-key', { address: 'not an address' });
    expect(bad.statusCode).toBe(422);
    expect(bad.body).toContain('class="field-error"');
    expect(
      (await htmx(viewer, 'POST', '/machines/host-key', { address: `${sshd.host}:${sshd.port}` })).statusCode,
    ).toBe(403);
  });

  it('adds an SSH machine from the form; errors stay beside their fields with the input kept', async () => {
    const form = await htmx(admin, 'GET', '/machines/new');
    expect(form.body.startsWith('<form id="machine-form-inner"')).toBe(true);
    for (const label of [
      'Адрес (host или host:port)',
      'Пользователь SSH',
      'Закрытый ключ SSH',
      'Отпечаток ключа хоста',
      'Получить с сервера',
      'Слоты',
      'Сохранить',
    ]) {
      expect(form.body).toContain(label);
    }
    const name = `box-${uid()}`;
    const wrong = await htmx(admin, 'POST', '/machines', {
      name,
      address: 'bad address!',
      sshUser: '',
      privateKey: '',
      slots: 'two',
      gpus: '',
      lostTimeoutSeconds: '600',
      hostKeyFingerprint: '',
    });
    expect(wrong.statusCode).toBe(422);
    expect(wrong.headers['hx-retarget']).toBe('#machine-form');
    expect(fieldError(wrong, 'machine', 'sshUser')).toBe('Обязательное поле.');
    expect(fieldError(wrong, 'machine', 'slots')).toBe('Нужно целое число.');
    expect(wrong.body).toContain(`value="${name}"`);
    expect(wrong.body).toContain('value="bad address!"');
    const badAddress = await htmx(admin, 'POST', '/machines', {
      name,
      address: 'bad address!',
      sshUser: 'trainer',
      privateKey: sshd.privateKey,
      slots: '2',
      gpus: '',
      lostTimeoutSeconds: '600',
      hostKeyFingerprint: '',
    });
    expect(fieldError(badAddress, 'machine', 'address')).toContain('не адрес');
    // The key is never echoed back, even in a failed form.
    expect(badAddress.body).not.toContain('PRIVATE KEY-----\n');

    const saved = await htmx(admin, 'POST', '/machines', {
      name,
      address: `${sshd.host}:${sshd.port}`,
      sshUser: sshd.username,
      privateKey: sshd.privateKey,
      hostKeyFingerprint: sshd.hostKeyFingerprint,
      slots: '2',
      gpus: '0, 1',
      lostTimeoutSeconds: '120',
    });
    expect(saved.statusCode).toBe(200);
    expect(saved.headers['hx-trigger-after-swap']).toBe('machine-saved');
    expect(saved.body).toMatch(/^<tr id="machine-\d+"/);
    expect(saved.body).toContain('Ещё не проверялась');
    const [row] = await stack.database.db.select().from(machines).where(eq(machines.name, name));
    expect(row).toMatchObject({
      slots: 2,
      gpus: [0, 1],
      lostTimeoutSeconds: 120,
      hostKeyFingerprint: sshd.hostKeyFingerprint,
      sshUser: sshd.username,
    });
    expect(row!.privateKeyEncrypted).toBeTruthy();
    expect(row!.privateKeyEncrypted).not.toContain('PRIVATE KEY');

    // Edit: the stored key is kept when the field is left empty; disabling is a checkbox.
    const edit = await htmx(admin, 'GET', `/machines/${row!.id}/edit`);
    expect(edit.body).toContain('Ключ сохранён; оставьте поле пустым');
    const updated = await htmx(admin, 'POST', `/machines/${row!.id}`, {
      name,
      address: `${sshd.host}:${sshd.port}`,
      sshUser: sshd.username,
      privateKey: '',
      hostKeyFingerprint: sshd.hostKeyFingerprint,
      slots: '3',
      gpus: '',
      lostTimeoutSeconds: '120',
    });
    expect(updated.statusCode).toBe(200);
    expect(updated.body).toContain('выключена');
    const [after] = await stack.database.db.select().from(machines).where(eq(machines.id, row!.id));
    expect(after).toMatchObject({ slots: 3, gpus: [], enabled: false, privateKeyEncrypted: row!.privateKeyEncrypted });

    const deleted = await htmx(admin, 'DELETE', `/machines/${row!.id}`);
    expect(deleted.statusCode).toBe(200);
    expect(deleted.body).toBe('');
  });

  it('refuses to delete the built-in local machine with a #flash message', async () => {
    const [local] = await stack.database.db.select().from(machines).where(eq(machines.name, 'local'));
    const response = await htmx(admin, 'DELETE', `/machines/${local!.id}`);
    expect(response.statusCode).toBe(409);
    expect(response.headers['hx-retarget']).toBe('#flash');
    expect(response.body).toContain('нельзя удалить');
  });

  it('probes a machine on demand and shows the new health', async () => {
    const [local] = await stack.database.db.select().from(machines).where(eq(machines.name, 'local'));
    const response = await htmx(admin, 'POST', `/machines/${local!.id}/probe`);
    expect(response.statusCode).toBe(200);
    expect(response.body).toContain('<span class="health ok"');
  });

  it('shows a hostile machine name as text', async () => {
    const name = `<script>alert("m${uid()}")</script>'`;
    await stack.database.db.insert(machines).values({ name, address: `h-${uid()}.example`, sshUser: 'u' });
    const response = await page(admin, '/machines');
    expect(response.body).toContain(htmlOf(name));
    expect(response.body).not.toContain(name);
  });
});

describe('the template pages', () => {
  it('adds a template (to templates.manage), then opens its processes page', async () => {
    const list = await page(admin, '/training/templates');
    expect(list.body).toContain('href="/training/templates/new"');
    expect((await page(operator, '/training/templates')).body).not.toContain('href="/training/templates/new"');
    expect((await page(operator, '/training/templates/new')).statusCode).toBe(403);

    const form = await page(admin, '/training/templates/new');
    expect(form.statusCode).toBe(200);
    for (const label of [
      'Добавить шаблон',
      'Команда',
      'Гиперпараметры (JSON)',
      'Всего шагов',
      'Время на остановку, с',
      'Сохранить',
    ])
      expect(form.body).toContain(label);

    const name = `form template ${uid()}`;
    const bad = await viaSession(web.app, admin, {
      method: 'POST',
      url: '/training/templates',
      payload: {
        name,
        command: '',
        params: '{"lr": ',
        totalSteps: '1.5',
        stopGraceSeconds: '30',
        env: 'GOOD=1\nnot a line',
      },
    });
    expect(bad.statusCode).toBe(422);
    expect(fieldError(bad, 'template', 'command')).toBe('Обязательное поле.');
    expect(fieldError(bad, 'template', 'params')).toMatch(/^Это не JSON:/);
    expect(fieldError(bad, 'template', 'totalSteps')).toBe('Нужно целое число.');
    expect(fieldError(bad, 'template', 'env')).toBe('Строка 2: пишите ИМЯ=значение.');
    expect(bad.body).toContain(`value="${name}"`);
    expect(bad.body).toContain(htmlOf('{"lr": '));

    const reserved = await viaSession(web.app, admin, {
      method: 'POST',
      url: '/training/templates',
      payload: { name, command: 'true', env: 'TRAINYARD_RUN_DIR=/x', stopGraceSeconds: '30' },
    });
    expect(reserved.statusCode).toBe(422);
    expect(fieldError(reserved, 'template', 'env')).toContain('переменные TRAINYARD_ задаёт сам Trainyard');

    const saved = await viaSession(web.app, admin, {
      method: 'POST',
      url: '/training/templates',
      payload: {
        name,
        description: 'd',
        command: 'python train.py',
        params: '{"lr": 0.1}',
        totalSteps: '500',
        stopGraceSeconds: '15',
        env: 'A=1\nB=two=2',
        workingDir: '',
      },
    });
    expect(saved.statusCode).toBe(303);
    const [row] = await stack.database.db.select().from(templates).where(eq(templates.name, name));
    expect(saved.headers.location).toBe(`/training/templates/${row!.id}/processes`);
    expect(row).toMatchObject({
      command: 'python train.py',
      params: { lr: 0.1 },
      totalSteps: 500,
      stopGraceSeconds: 15,
      env: { A: '1', B: 'two=2' },
      workingDir: null,
    });
  });

  it('edits a template with its values filled in, refuses a taken name beside the field, deletes it after confirmation', async () => {
    const [other] = await stack.database.db
      .insert(templates)
      .values({ name: `taken ${uid()}`, command: 'true' })
      .returning();
    const [row] = await stack.database.db
      .insert(templates)
      .values({ name: `edit me ${uid()}`, command: 'echo "hi"', params: { a: 1 }, totalSteps: 10 })
      .returning();
    const edit = await page(admin, `/training/templates/${row!.id}/edit`);
    expect(edit.statusCode).toBe(200);
    expect(edit.body).toContain('Изменить шаблон');
    expect(edit.body).toContain(htmlOf('echo "hi"'));
    expect(edit.body).toContain(`hx-delete="/training/templates/${row!.id}"`);
    expect(edit.body).toContain('hx-confirm="Удалить шаблон');
    const taken = await viaSession(web.app, admin, {
      method: 'POST',
      url: `/training/templates/${row!.id}`,
      payload: { name: other!.name, command: 'true', stopGraceSeconds: '30' },
    });
    expect(taken.statusCode).toBe(422);
    expect(fieldError(taken, 'template', 'name')).toContain('уже есть');
    const saved = await viaSession(web.app, admin, {
      method: 'POST',
      url: `/training/templates/${row!.id}`,
      payload: { name: row!.name, command: 'echo changed', params: '', totalSteps: '', stopGraceSeconds: '5' },
    });
    expect(saved.statusCode).toBe(303);
    const [after] = await stack.database.db.select().from(templates).where(eq(templates.id, row!.id));
    expect(after).toMatchObject({ command: 'echo changed', params: {}, totalSteps: null, stopGraceSeconds: 5 });
    const deleted = await htmx(admin, 'DELETE', `/training/templates/${row!.id}`);
    expect(deleted.headers['hx-redirect']).toBe('/training/templates');
    expect((await stack.database.db.select().from(templates).where(eq(templates.id, row!.id))).length).toBe(0);
  });

  it('shows a hostile template name as text in the edit form', async () => {
    const name = `"><script>alert('t${uid()}')</script>`;
    const [row] = await stack.database.db
      .insert(templates)
      .values({ name, command: '</textarea><script>x()</script>' })
      .returning();
    const edit = await page(admin, `/training/templates/${row!.id}/edit`);
    expect(edit.body).toContain(`value="${htmlOf(name)}"`);
    expect(edit.body).not.toContain('<script>alert(');
    expect(edit.body).not.toContain('</textarea><script>');
  });
});
