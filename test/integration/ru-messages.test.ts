// Every refusal the pages can show speaks the reader's language: each invalid form and
// refused action below is sent through the real app with the Russian locale, and the
// message the page shows must be Russian — Cyrillic, no English words outside names
// (fields, variables, quoted input) — and never the English text the JSON API sends.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LightMyRequestResponse } from 'fastify';
import { createProcess } from '../../services/processes.js';
import { createTemplate } from '../../services/templates.js';
import { createMachine, listMachines } from '../../services/machines.js';
import { makeActor, startApp, TEST_SECRET, viaSession, type Actor, type TestApp } from '../support/app.js';
import { startStack, uid, type Stack } from '../support/stack.js';

let stack: Stack;
let web: TestApp;
let admin: Actor;

beforeAll(async () => {
  stack = await startStack({ worker: false });
  web = await startApp(stack);
  admin = await makeActor(stack, [{ role: 'admin' }], 'ru-admin');
});
afterAll(async () => {
  await web?.close();
  await stack?.close();
});

const decode = (s: string) =>
  s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&');

/** The refusal texts a page shows: field errors, form alerts, the flash and a message page. */
function shownMessages(body: string): string[] {
  const found: string[] = [];
  for (const m of body.matchAll(/<p class="field-error"[^>]*>([^<]*)<\/p>/g)) found.push(m[1]!);
  for (const m of body.matchAll(/<p class="error" role="alert">([^<]*)<\/p>/g)) found.push(m[1]!);
  for (const m of body.matchAll(/<div class="flash error" role="alert"><span>([^<]*)<\/span>/g)) found.push(m[1]!);
  for (const m of body.matchAll(/<section class="card narrow"><h1>[^<]*<\/h1><p>([^<]*)<\/p>/g)) found.push(m[1]!);
  return found.map(decode);
}

// Names a Russian message may carry as they are: form fields, env names, technical words.
const NAMES = new Set(
  [
    'name command description workingDir env secretEnv params totalSteps stopGraceSeconds',
    'address sshUser privateKey privateKeyPath hostKeyFingerprint slots gpus lostTimeoutSeconds enabled',
    'login password expiresDays roleId templateId machineId machineIds perMachine',
    'host port base64 ssh keygen lf SHA256 PEM OpenSSH JSON TRAINYARD_KEYS_DIR TRAINYARD_SECRET',
    'Trainyard Temporal GPU SSH CSRF API',
  ]
    .join(' ')
    .split(' '),
);

/** English words left once quoted input («…», "…") and known names are taken out. */
function englishWords(message: string): string[] {
  const unquoted = message.replace(/«[^»]*»/g, ' ').replace(/"[^"]*"/g, ' ');
  return (unquoted.match(/[A-Za-z][A-Za-z0-9_.-]*/g) ?? []).filter(
    // Upper-case words are variable names (K, WANDB_API_KEY), as are words with digits or _.
    (word) => !NAMES.has(word.replace(/[.-]+$/, '')) && !/[0-9_]/.test(word) && !/^[A-Z]+$/.test(word),
  );
}

function expectRussian(response: LightMyRequestResponse, what: string): string {
  const messages = shownMessages(response.body);
  expect(messages.length, `${what}: no message shown (HTTP ${response.statusCode})`).toBeGreaterThan(0);
  for (const message of messages) {
    expect(message, what).toMatch(/[А-Яа-яЁё]/);
    expect(englishWords(message), `${what}: "${message}"`).toEqual([]);
  }
  return messages.join(' | ');
}

const form = (fields: Record<string, string>) => ({
  payload: new URLSearchParams({ _csrf: admin.csrf, ...fields }).toString(),
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
});

const post = (url: string, fields: Record<string, string>, htmx = false) =>
  viaSession(web.app, admin, {
    method: 'POST',
    url: `${url}?lang=ru`,
    ...form(fields),
    headers: { ...form(fields).headers, ...(htmx ? { 'hx-request': 'true' } : {}) },
  });

describe('refusals on the pages, in Russian', () => {
  it('the template form says what is wrong in Russian', async () => {
    const taken = await createTemplate(stack.database.db, { name: `занят ${uid()}`, command: 'true' });
    const cases: Array<[string, Record<string, string>]> = [
      ['a variable name that is not one', { name: `t ${uid()}`, command: 'true', env: '1BAD=x' }],
      ['a TRAINYARD_ variable', { name: `t ${uid()}`, command: 'true', env: 'TRAINYARD_RUN=x' }],
      ['a name taken', { name: taken.name, command: 'true' }],
      ['too long a name', { name: 'я'.repeat(300), command: 'true' }],
      ['a control character', { name: `t\u0007${uid()}`, command: 'true' }],
      ['a stop grace too long', { name: `t ${uid()}`, command: 'true', stopGraceSeconds: '99999999' }],
      ['hyperparameters that are not JSON', { name: `t ${uid()}`, command: 'true', params: '{oops' }],
      ['a secret also plain', { name: `t ${uid()}`, command: 'true', env: 'K=1', secretEnv: 'K=2' }],
    ];
    for (const [what, fields] of cases) {
      const response = await post('/training/templates', fields);
      expect(response.statusCode, what).toBeGreaterThanOrEqual(400);
      const shown = expectRussian(response, what);
      // The English text is what the JSON API would say; it must not leak into the page.
      expect(shown, what).not.toMatch(/is not a variable|already exists|may have at most|must be from/);
    }
  });

  it('the machine form says what is wrong in Russian', async () => {
    const cases: Array<[string, Record<string, string>]> = [
      ['not an address', { name: `m-${uid()}`, address: 'a b', sshUser: 'ops', privateKeyPath: 'k' }],
      ['a bad ssh user', { name: `m-${uid()}`, address: 'host', sshUser: '1-ops!', privateKeyPath: 'k' }],
      ['a key path outside', { name: `m-${uid()}`, address: 'host', sshUser: 'ops', privateKeyPath: '/etc/k' }],
      ['a missing key file', { name: `m-${uid()}`, address: 'host', sshUser: 'ops', privateKeyPath: 'none' }],
      ['not a private key', { name: `m-${uid()}`, address: 'host', sshUser: 'ops', privateKey: 'hello' }],
      [
        'a bad fingerprint',
        { name: `m-${uid()}`, address: 'host', sshUser: 'ops', privateKeyPath: 'k', hostKeyFingerprint: 'md5:x' },
      ],
      ['the local name', { name: 'local', address: 'host', sshUser: 'ops', privateKeyPath: 'k' }],
    ];
    for (const [what, fields] of cases) {
      const response = await post('/machines', fields);
      expect(response.statusCode, what).toBeGreaterThanOrEqual(400);
      expectRussian(response, what);
    }
  });

  it('the roles, users and tokens pages refuse in Russian', async () => {
    const cases: Array<[string, string, Record<string, string>]> = [
      ['a role name with symbols', '/admin/roles', { name: '<b>!', permissions: 'processes.view' }],
      ['a built-in role renamed', '/admin/roles/1', { name: `x${uid()}`, permissions: 'processes.view' }],
      ['a login with spaces', '/admin/users', { login: 'два слова', name: '' }],
      ['a login taken', '/admin/users', { login: admin.login, name: '' }],
      ['an expiry out of range', '/account/tokens', { name: 'ci', expiresDays: '99999' }],
      ['a blank token name', '/account/tokens', { name: '   ' }],
    ];
    for (const [what, url, fields] of cases) {
      const response = await post(url, fields);
      expect(response.statusCode, what).toBeGreaterThanOrEqual(400);
      expectRussian(response, what);
    }
  });

  it('a refused process action and a bad add-process form answer in Russian', async () => {
    const template = await createTemplate(stack.database.db, { name: `ru ${uid()}`, command: 'true' });
    const local = (await listMachines(stack.database.db)).find((m) => m.kind === 'local')!;
    const process = await createProcess(stack.deps, { templateId: template.id, machineId: local.id });
    // A created process cannot be stopped: the status table's refusal, through htmx.
    const stop = await post(`/training/processes/${process.id}/stop`, {}, true);
    expect(stop.statusCode).toBe(409);
    expectRussian(stop, 'stop a created process');

    const add = await post(`/training/templates/${template.id}/processes`, {
      machineIds: String(local.id),
      perMachine: '1',
      params: '{"lr": 1',
    });
    expect(add.statusCode).toBeGreaterThanOrEqual(400);
    expectRussian(add, 'hyperparameters that are not JSON');

    const missing = await viaSession(web.app, admin, {
      method: 'GET',
      url: '/training/templates/999999999/edit?lang=ru',
    });
    expect(missing.statusCode).toBe(404);
    expectRussian(missing, 'a template that does not exist');
  });

  it("a disabled machine's probe button says why it is off, in the reader's language", async () => {
    const key = '-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n';
    const machine = await createMachine(
      { db: stack.database.db, secret: TEST_SECRET, keysDir: null },
      { name: `off-${uid()}`, address: '10.9.9.9', sshUser: 'u', privateKey: key, enabled: false },
    );
    for (const [lang, why] of [
      ['ru', 'Выключенные машины не проверяются'],
      ['en', 'Disabled machines are not probed'],
    ] as const) {
      const page = await viaSession(web.app, admin, { method: 'GET', url: `/machines?lang=${lang}` });
      const row = new RegExp(`<tr id="machine-${machine.id}"[\\s\\S]*?</tr>`).exec(page.body)?.[0] ?? '';
      expect(row).toMatch(new RegExp(`<button[^>]* disabled aria-describedby="machine-${machine.id}-probe-why"`));
      expect(row).toContain(`id="machine-${machine.id}-probe-why">${why}`);
    }
  });

  it('the JSON API keeps English for the same refusals', async () => {
    const taken = (await createTemplate(stack.database.db, { name: `занят ${uid()}`, command: 'true' })).name;
    const response = await viaSession(web.app, admin, {
      method: 'POST',
      url: '/api/v1/templates?lang=ru',
      payload: { name: taken, command: 'true' },
    });
    expect(response.statusCode).toBe(409);
    expect(response.json().error.message).toMatch(/already exists/);
  });
});
