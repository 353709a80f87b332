// Hostile input on every field of the JSON API's bodies: too long, wrong type, unicode,
// SQL and shell metacharacters, NUL and broken surrogates. Each answer is a 400 naming
// the field or the value stored verbatim — and what reaches a trainer is never executed.
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeActor, startApp, viaToken, type Actor, type TestApp } from '../support/app.js';
import { startStack, uid, waitFor, type Stack } from '../support/stack.js';

let stack: Stack;
let t: TestApp;
let admin: Actor;
let localId: number;

beforeAll(async () => {
  stack = await startStack();
  t = await startApp(stack);
  admin = await makeActor(stack, [{ role: 'admin' }], 'hostile');
  const machines = (await viaToken(t.app, admin, { method: 'GET', url: '/api/v1/machines' })).json<{
    items: Array<{ id: number; name: string }>;
  }>();
  localId = machines.items.find((m) => m.name === 'local')!.id;
});
afterAll(async () => {
  await t?.close();
  await stack?.close();
});

type Json = Record<string, any>;
const MARKER = `/tmp/trainyard-pwned-${uid()}`;
const SHELL = `$(touch ${MARKER}) \`touch ${MARKER}\`; touch ${MARKER} && echo | cat > ${MARKER}.2 '"\\`;
const SQL = `'); DROP TABLE users; -- " OR 1=1 /*`;
const UNICODE = 'Обучение 训练 🚀 e\u0301 \u202Eevil\u200B';
const PEM = '-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAhostile\n-----END OPENSSH PRIVATE KEY-----\n';

/** What the field must do with the value: refuse it, keep it verbatim, or either (checked as such). */
type Expect = 400 | 'verbatim';

interface Case {
  field: string;
  value: unknown;
  expect: Expect;
}

const always400 = (field: string): Case[] => [
  { field, value: 'a\u0000b', expect: 400 },
  { field, value: 'lone \ud800 half', expect: 400 },
];

const freeText = (field: string, max: number, opts: { unique?: boolean } = {}): Case[] => [
  { field, value: 'x'.repeat(max + 1), expect: 400 },
  { field, value: 12345, expect: 400 },
  { field, value: true, expect: 400 },
  { field, value: ['a'], expect: 400 },
  { field, value: { a: 1 }, expect: 400 },
  { field, value: `${UNICODE}${opts.unique ? ` ${uid()}` : ''}`, expect: 'verbatim' },
  { field, value: `${SQL}${opts.unique ? ` ${uid()}` : ''}`, expect: 'verbatim' },
  { field, value: `${SHELL}${opts.unique ? ` ${uid()}` : ''}`, expect: 'verbatim' },
  ...always400(field),
];

const integerField = (field: string, min: number, max: number): Case[] => [
  { field, value: min - 1, expect: 400 },
  { field, value: max + 1, expect: 400 },
  { field, value: 1.5, expect: 400 },
  { field, value: String(min), expect: 400 },
  { field, value: '1; DROP TABLE users', expect: 400 },
  { field, value: [min], expect: 400 },
  { field, value: min, expect: 'verbatim' },
];

const TEMPLATE_CASES: Case[] = [
  ...freeText('name', 200, { unique: true }),
  { field: 'name', value: '', expect: 400 },
  ...freeText('description', 10_000),
  ...freeText('command', 64 * 1024),
  { field: 'command', value: 'é'.repeat(32 * 1024 + 1), expect: 400 },
  ...freeText('workingDir', 4096).filter((c) => typeof c.value !== 'string' || !c.value.includes('\n')),
  { field: 'env', value: { GOOD: SHELL }, expect: 'verbatim' },
  { field: 'env', value: { GOOD: UNICODE }, expect: 'verbatim' },
  { field: 'env', value: { GOOD: SQL }, expect: 'verbatim' },
  { field: 'env', value: { 'BAD;rm': 'x' }, expect: 400 },
  { field: 'env', value: { '$(id)': 'x' }, expect: 400 },
  { field: 'env', value: { TRAINYARD_PARAMS: '{}' }, expect: 400 },
  { field: 'env', value: { GOOD: 1 }, expect: 400 },
  { field: 'env', value: { GOOD: 'a\u0000' }, expect: 400 },
  { field: 'env', value: 'A=1', expect: 400 },
  { field: 'env', value: ['A'], expect: 400 },
  {
    field: 'params',
    value: { lr: 0.01, note: SHELL, sql: SQL, text: UNICODE, nested: { list: [1, 'two', null, true] } },
    expect: 'verbatim',
  },
  { field: 'params', value: { big: 'x'.repeat(65 * 1024) }, expect: 400 },
  { field: 'params', value: { bad: 'nul\u0000' }, expect: 400 },
  { field: 'params', value: ['lr'], expect: 400 },
  { field: 'params', value: 'lr=1', expect: 400 },
  ...integerField('totalSteps', 1, 2_147_483_647),
  ...integerField('stopGraceSeconds', 0, 3600),
];

const MACHINE_CASES: Case[] = [
  ...freeText('name', 200, { unique: true }),
  { field: 'address', value: `host; touch ${MARKER}`, expect: 400 },
  { field: 'address', value: `$(touch ${MARKER})`, expect: 400 },
  { field: 'address', value: '-oProxyCommand=touch', expect: 400 },
  { field: 'address', value: 'host:0', expect: 400 },
  { field: 'address', value: 'host:65536', expect: 400 },
  { field: 'address', value: 'хост.example', expect: 400 },
  { field: 'address', value: 'x'.repeat(256), expect: 400 },
  { field: 'address', value: 22, expect: 400 },
  ...always400('address'),
  { field: 'address', value: 'gpu-7.example.com:2222', expect: 'verbatim' },
  { field: 'address', value: '[fe80::1]:22', expect: 'verbatim' },
  { field: 'sshUser', value: `root; touch ${MARKER}`, expect: 400 },
  { field: 'sshUser', value: '-oProxyCommand=x', expect: 400 },
  { field: 'sshUser', value: 'пользователь', expect: 400 },
  { field: 'sshUser', value: 7, expect: 400 },
  { field: 'sshUser', value: 'x'.repeat(33), expect: 400 },
  { field: 'sshUser', value: 'deploy_bot-2', expect: 'verbatim' },
  { field: 'privateKey', value: SHELL, expect: 400 },
  { field: 'privateKey', value: 'x'.repeat(16 * 1024 + 1), expect: 400 },
  { field: 'privateKey', value: 42, expect: 400 },
  { field: 'privateKeyPath', value: `$(touch ${MARKER})`, expect: 400 },
  { field: 'privateKeyPath', value: '../../etc/shadow', expect: 400 },
  { field: 'privateKeyPath', value: '/etc/passwd', expect: 400 },
  { field: 'hostKeyFingerprint', value: `SHA256:${'A'.repeat(42)};`, expect: 400 },
  { field: 'hostKeyFingerprint', value: SQL, expect: 400 },
  { field: 'hostKeyFingerprint', value: `SHA256:${'A'.repeat(43)}`, expect: 'verbatim' },
  ...integerField('slots', 1, 64),
  { field: 'gpus', value: [0, 1, 2], expect: 'verbatim' },
  { field: 'gpus', value: ['0'], expect: 400 },
  { field: 'gpus', value: '0,1', expect: 400 },
  { field: 'gpus', value: [1, 1], expect: 400 },
  { field: 'gpus', value: Array.from({ length: 65 }, (_, i) => i), expect: 400 },
  ...integerField('lostTimeoutSeconds', 10, 7 * 86_400),
  { field: 'enabled', value: 'true', expect: 400 },
  { field: 'enabled', value: 1, expect: 400 },
  { field: 'enabled', value: false, expect: 'verbatim' },
];

async function post(url: string, payload: unknown) {
  const response = await viaToken(t.app, admin, { method: 'POST', url, payload: payload as object });
  return { status: response.statusCode, body: response.json<Json>() };
}

async function check(kind: 'templates' | 'machines', base: Json, c: Case) {
  const body = { ...base, [c.field]: c.value };
  const created = await post(`/api/v1/${kind}`, body);
  const said = JSON.stringify(created.body).slice(0, 300);
  expect([201, 400], said).toContain(created.status);
  if (created.status === 400) {
    expect(created.body.error.code).toBe('invalid');
    expect(String(created.body.error.field).split('.')[0], said).toBe(c.field);
  } else {
    const read = (
      await viaToken(t.app, admin, { method: 'GET', url: `/api/v1/${kind}/${created.body.id}` })
    ).json<Json>();
    expect(read[c.field], `${c.field} stored verbatim`).toEqual(c.value);
    await viaToken(t.app, admin, { method: 'DELETE', url: `/api/v1/${kind}/${created.body.id}` });
  }
  expect(created.status === 400 ? 400 : 'verbatim', said).toBe(c.expect);
}

describe('hostile input', () => {
  it.each(
    TEMPLATE_CASES.map(
      (c) =>
        [
          c.field,
          typeof c.value === 'string' ? c.value.slice(0, 40) : JSON.stringify(c.value)?.slice(0, 40),
          c,
        ] as const,
    ),
  )('template %s = %s → 400 or verbatim', async (_field, _shown, c) =>
    check('templates', { name: `hostile ${uid()}`, command: 'true' }, c),
  );

  it.each(
    MACHINE_CASES.map(
      (c) =>
        [
          c.field,
          typeof c.value === 'string' ? c.value.slice(0, 40) : JSON.stringify(c.value)?.slice(0, 40),
          c,
        ] as const,
    ),
  )('machine %s = %s → 400 or verbatim', async (_field, _shown, c) =>
    check('machines', { name: `hostile-${uid()}`, address: '10.0.0.1', sshUser: 'train', privateKey: PEM }, c),
  );

  it('refuses wrong types and hostile values in a process body with the field named', async () => {
    const template = (await post('/api/v1/templates', { name: `hostile proc ${uid()}`, command: 'true' })).body;
    const cases: Array<[Json, string]> = [
      [{ templateId: String(template.id), machineId: localId }, 'templateId'],
      [{ templateId: template.id, machineId: `${localId} OR 1=1` }, 'machineId'],
      [{ templateId: 99999999999, machineId: localId }, 'templateId'],
      [{ templateId: template.id, machineId: 987654 }, 'machineId'],
      [{ templateId: 987654, machineId: localId }, 'templateId'],
      [{ templateId: template.id, machineId: localId, params: 'lr=1' }, 'params'],
      [{ templateId: template.id, machineId: localId, params: { a: 'x'.repeat(65 * 1024) } }, 'params'],
      [{ templateId: template.id, machineId: localId, params: { a: '\u0000' } }, 'params'],
      [{ templateId: template.id, machineId: localId, extra: 1 }, 'extra'],
      [{ machineId: localId }, 'templateId'],
    ];
    for (const [body, field] of cases) {
      const response = await post('/api/v1/processes', body);
      expect(response.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(String(response.body.error.field).split('.')[0]).toBe(field);
    }
    const notJson = await viaToken(t.app, admin, {
      method: 'POST',
      url: '/api/v1/processes',
      payload: '{"templateId": 1,',
      headers: { 'content-type': 'application/json' },
    });
    expect(notJson.statusCode).toBe(400);
    const names = await viaToken(t.app, admin, {
      method: 'GET',
      url: `/api/v1/processes?status=${encodeURIComponent(SQL)}`,
    });
    expect(names.statusCode).toBe(400);
  });

  it('hands shell and SQL metacharacters to the trainer as data, never running them', async () => {
    const template = await post('/api/v1/templates', {
      name: `hostile run ${SHELL} ${uid()}`,
      command: `printf 'env=%s\\n' "$HOSTILE"; printf 'params=%s\\n' "$TRAINYARD_PARAMS"`,
      env: { HOSTILE: `${SHELL} ${SQL}` },
      params: { note: SHELL, sql: SQL, text: UNICODE },
    });
    expect(template.status).toBe(201);
    const proc = await post('/api/v1/processes', {
      templateId: template.body.id,
      machineId: localId,
      params: { extra: `'; touch ${MARKER}; '` },
    });
    expect(proc.status).toBe(201);
    expect((await post(`/api/v1/processes/${proc.body.id}/start`, undefined)).status).toBe(202);
    await waitFor('completed', async () => {
      const view = (
        await viaToken(t.app, admin, { method: 'GET', url: `/api/v1/processes/${proc.body.id}` })
      ).json<Json>();
      if (view.status === 'failed') throw new Error(`failed: ${view.lastError}`);
      return view.status === 'completed';
    });
    const logs = (
      await viaToken(t.app, admin, { method: 'GET', url: `/api/v1/processes/${proc.body.id}/logs` })
    ).json<Json>();
    expect(logs.stdout).toContain(`env=${SHELL} ${SQL}\n`);
    const params = JSON.parse(/params=(.*)\n/.exec(logs.stdout)![1]!) as Json;
    expect(params).toMatchObject({ note: SHELL, sql: SQL, text: UNICODE, extra: `'; touch ${MARKER}; '` });
    expect(fs.existsSync(MARKER)).toBe(false);
    expect(fs.existsSync(`${MARKER}.2`)).toBe(false);
    // And the database is whole.
    expect((await viaToken(t.app, admin, { method: 'GET', url: '/api/v1/templates?limit=1' })).statusCode).toBe(200);
  });
});
