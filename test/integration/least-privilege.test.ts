// Answers show only what the asker may know: template env values are masked for anyone
// without templates.manage; secret env is write-only (never in an answer, never plain in
// the database) yet reaches the trainer of a real run; and machine addresses are shown
// only to users with machines.view.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { eq, sql } from 'drizzle-orm';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { machines, processes, roleGrants, roles, runs } from '../../db/schema.js';
import { encryptSecret } from '../../lib/keybox.js';
import { freePort } from '../../lib/temporal-dev-server.js';
import { act, createProcess } from '../../services/processes.js';
import { makeActor, startApp, viaSession, viaToken, type Actor, type TestApp } from '../support/app.js';
import { localMachine, startStack, TEST_SECRET, uid, waitFor, waitForStatus, type Stack } from '../support/stack.js';

let stack: Stack;
let t: TestApp;
let admin: Actor;
let viewer: Actor;

beforeAll(async () => {
  stack = await startStack();
  t = await startApp(stack);
  admin = await makeActor(stack, [{ role: 'admin' }], 'lp-admin');
  viewer = await makeActor(stack, [{ role: 'viewer' }], 'lp-viewer');
});
afterAll(async () => {
  await t?.close();
  await stack?.close();
});

const json = (response: LightMyRequestResponse) => response.json<Record<string, unknown>>();

/** Every text column of the tables a secret could land in, as one string. */
async function databaseText(): Promise<string> {
  const rows = await stack.database.db.execute<{ text: string }>(sql`
    select coalesce(string_agg(t::text, ' '), '') as text from templates t
    union all select coalesce(string_agg(r::text, ' '), '') from runs r
    union all select coalesce(string_agg(a::text, ' '), '') from audit_events a
    union all select coalesce(string_agg(e::text, ' '), '') from process_events e`);
  return [...rows].map((row) => row.text).join('\n');
}

describe('template env', () => {
  it('masks env values for viewers, shows them to managers, and never answers a secret value', async () => {
    const secret = `sk-${uid()}-${uid()}`;
    const created = await viaToken(t.app, admin, {
      method: 'POST',
      url: '/api/v1/templates',
      payload: {
        name: `lp ${uid()}`,
        command: 'true',
        env: { PLAIN: 'visible-value-1' },
        secretEnv: { API_KEY: secret },
      },
    });
    expect(created.statusCode).toBe(201);
    expect(created.body).not.toContain(secret);
    const id = json(created).id as number;
    expect(json(created)).toMatchObject({ env: { PLAIN: 'visible-value-1' }, secretEnvKeys: ['API_KEY'] });

    const asViewer = await viaToken(t.app, viewer, { method: 'GET', url: `/api/v1/templates/${id}` });
    expect(asViewer.statusCode).toBe(200);
    expect(json(asViewer)).toMatchObject({ env: { PLAIN: '••••' }, secretEnvKeys: ['API_KEY'] });
    expect(asViewer.body).not.toContain('visible-value-1');
    const list = await viaToken(t.app, viewer, { method: 'GET', url: '/api/v1/templates?limit=500' });
    const mine = (json(list).items as Array<Record<string, unknown>>).find((item) => item.id === id);
    expect(mine?.env).toEqual({ PLAIN: '••••' });
    expect(list.body).not.toContain('visible-value-1');

    const asManager = await viaToken(t.app, admin, { method: 'GET', url: `/api/v1/templates/${id}` });
    expect(json(asManager)).toMatchObject({ env: { PLAIN: 'visible-value-1' }, secretEnvKeys: ['API_KEY'] });
    expect(asManager.body).not.toContain(secret);

    // An edit of something else keeps the secret; a name is plain or secret, not both.
    const patched = await viaToken(t.app, admin, {
      method: 'PATCH',
      url: `/api/v1/templates/${id}`,
      payload: { description: 'changed' },
    });
    expect(json(patched).secretEnvKeys).toEqual(['API_KEY']);
    const clash = await viaToken(t.app, admin, {
      method: 'PATCH',
      url: `/api/v1/templates/${id}`,
      payload: { env: { API_KEY: 'x' } },
    });
    expect(clash.statusCode).toBe(400);
    expect(json(clash).error).toMatchObject({ code: 'invalid', field: 'env.API_KEY' });

    // The edit page shows the name, never the value; the OpenAPI document knows the fields.
    const edit = await viaSession(t.app, admin, { method: 'GET', url: `/training/templates/${id}/edit` });
    expect(edit.statusCode).toBe(200);
    expect(edit.body).toContain('API_KEY');
    expect(edit.body).not.toContain(secret);
    const openapi = await t.app.inject({ method: 'GET', url: '/api/v1/openapi.json' });
    expect(openapi.body).toContain('secretEnvKeys');
    expect(openapi.body).toContain('"secretEnv"');

    // Stored sealed: no table holds the value as text.
    expect(await databaseText()).not.toContain(secret);
  });

  it('adds and removes secrets through the edit form without ever echoing them', async () => {
    const created = await viaToken(t.app, admin, {
      method: 'POST',
      url: '/api/v1/templates',
      payload: { name: `lp-form ${uid()}`, command: 'true', secretEnv: { KEEP: 'k-value-1', DROP: 'd-value-1' } },
    });
    const id = json(created).id as number;
    const formSecret = `form-${uid()}`;
    const saved = await viaSession(t.app, admin, {
      method: 'POST',
      url: `/training/templates/${id}`,
      payload: {
        name: json(created).name as string,
        command: 'true',
        env: 'A=1',
        secretEnv: `ADDED=${formSecret}`,
        secretEnvRemove: 'DROP',
        stopGraceSeconds: '30',
        params: '{}',
      },
    });
    expect(saved.statusCode).toBe(303);
    expect(json(await viaToken(t.app, admin, { method: 'GET', url: `/api/v1/templates/${id}` }))).toMatchObject({
      env: { A: '1' },
      secretEnvKeys: ['ADDED', 'KEEP'],
    });
    // A form that fails keeps nothing secret on the page it sends back.
    const failed = await viaSession(t.app, admin, {
      method: 'POST',
      url: `/training/templates/${id}`,
      payload: { name: '', command: 'true', secretEnv: `ADDED=${formSecret}-2` },
    });
    expect(failed.statusCode).toBe(422);
    expect(failed.body).not.toContain(formSecret);
    expect(await databaseText()).not.toContain(formSecret);
  });

  it('gives the secret value to the trainer of a real run, and keeps it sealed in the run’s copy', async () => {
    const secret = `run-secret-${uid()}-${uid()}`;
    const created = await viaToken(t.app, admin, {
      method: 'POST',
      url: '/api/v1/templates',
      payload: {
        name: `lp-run ${uid()}`,
        command: `printf '%s' "$API_KEY" > "$TRAINYARD_RUN_DIR/api-key.txt"`,
        secretEnv: { API_KEY: secret },
      },
    });
    const templateId = json(created).id as number;
    const local = await localMachine(stack);
    const processCreated = await viaToken(t.app, admin, {
      method: 'POST',
      url: '/api/v1/processes',
      payload: { templateId, machineId: local.id },
    });
    expect(processCreated.statusCode).toBe(201);
    const processId = json(processCreated).id as number;
    expect(
      (await viaToken(t.app, admin, { method: 'POST', url: `/api/v1/processes/${processId}/start` })).statusCode,
    ).toBe(202);
    await waitForStatus(stack, processId, 'completed', 90_000);
    const [run] = await stack.database.db.select().from(runs).where(eq(runs.processId, processId));
    expect(run?.runDir).toBeTruthy();
    const written = await waitFor(
      'the trainer’s file',
      async () => {
        const file = path.join(run!.runDir!, 'api-key.txt');
        return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null;
      },
      10_000,
    );
    expect(written).toBe(secret);
    expect(JSON.stringify(run!.templateSnapshot)).toContain('"secretEnv"');
    expect(await databaseText()).not.toContain(secret);
    // Nor does any answer about the run carry it.
    for (const url of [
      `/api/v1/processes/${processId}`,
      `/api/v1/processes/${processId}/runs`,
      `/api/v1/processes/${processId}/logs`,
      `/api/v1/templates/${templateId}`,
    ]) {
      expect((await viaToken(t.app, admin, { method: 'GET', url })).body, url).not.toContain(secret);
    }
  }, 120_000);
});

describe('machine addresses', () => {
  it('shows machine names but not addresses to a user without machines.view: processes page, add form, fragments, JSON API', async () => {
    const address = `10.66.${Math.floor(Math.random() * 200) + 1}.7:2222`;
    const [machine] = await stack.database.db
      .insert(machines)
      .values({ name: `gpu-box-${uid()}`, kind: 'ssh', address, sshUser: 'trainer', enabled: false })
      .returning();
    const created = await viaToken(t.app, admin, {
      method: 'POST',
      url: '/api/v1/templates',
      payload: { name: `lp-addr ${uid()}`, command: 'true' },
    });
    const templateId = json(created).id as number;
    const [p] = await stack.database.db.insert(processes).values({ templateId, machineId: machine!.id }).returning();
    const [role] = await stack.database.db
      .insert(roles)
      .values({ name: `no-machines-${uid()}`, permissions: ['templates.view', 'processes.view', 'processes.create'] })
      .returning();
    const blind = await makeActor(stack, [], 'lp-blind');
    await stack.database.db.insert(roleGrants).values({ userId: blind.id, roleId: role!.id, templateId: null });

    const host = address.split(':')[0]!;
    const answers: Array<[string, LightMyRequestResponse]> = [
      ['page', await viaSession(t.app, blind, { method: 'GET', url: `/training/templates/${templateId}/processes` })],
      [
        'add form',
        await viaSession(t.app, blind, { method: 'GET', url: `/training/templates/${templateId}/processes/new` }),
      ],
      ['row', await viaSession(t.app, blind, { method: 'GET', url: `/training/processes/${p!.id}/row` })],
      ['details', await viaSession(t.app, blind, { method: 'GET', url: `/training/processes/${p!.id}/details` })],
      ['facts', await viaSession(t.app, blind, { method: 'GET', url: `/training/processes/${p!.id}/facts` })],
      ['api process', await viaToken(t.app, blind, { method: 'GET', url: `/api/v1/processes/${p!.id}` })],
      ['api list', await viaToken(t.app, blind, { method: 'GET', url: `/api/v1/processes?templateId=${templateId}` })],
      [
        'api template processes',
        await viaToken(t.app, blind, { method: 'GET', url: `/api/v1/templates/${templateId}/processes` }),
      ],
    ];
    for (const [what, response] of answers) {
      expect(response.statusCode, what).toBe(200);
      expect(response.body, what).not.toContain(host);
    }
    for (const what of ['page', 'add form', 'row', 'facts', 'api process']) {
      expect(answers.find(([name]) => name === what)![1].body, what).toContain(machine!.name);
    }
    // Someone who may see machines sees the address where it always was.
    const page = await viaSession(t.app, admin, { method: 'GET', url: `/training/templates/${templateId}/processes` });
    expect(page.body).toContain(host);
    const form = await viaSession(t.app, admin, {
      method: 'GET',
      url: `/training/templates/${templateId}/processes/new`,
    });
    expect(form.body).toContain(host);
  });

  it('keeps the address out of a connection error that a user without machines.view reads', async () => {
    // A real start on an SSH machine whose port answers nothing: the launch fails with the
    // executor's own message, which quotes the address.
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-lp-key-'));
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(keyDir, 'key')]);
    const fingerprint = execFileSync('ssh-keygen', ['-l', '-f', path.join(keyDir, 'key.pub')], {
      encoding: 'utf8',
    }).split(' ')[1]!;
    const [machine] = await stack.database.db
      .insert(machines)
      .values({
        name: `silent-box-${uid()}`,
        kind: 'ssh',
        address,
        sshUser: 'trainer',
        privateKeyEncrypted: encryptSecret(TEST_SECRET, fs.readFileSync(path.join(keyDir, 'key'), 'utf8')),
        hostKeyFingerprint: fingerprint,
      })
      .returning();
    await stack.workers!.reconcile();
    const created = await viaToken(t.app, admin, {
      method: 'POST',
      url: '/api/v1/templates',
      payload: { name: `lp-err ${uid()}`, command: 'true' },
    });
    const templateId = json(created).id as number;
    const p = await createProcess(stack.deps, { templateId, machineId: machine!.id });
    await act(stack.deps, p.id, 'start');
    const failed = await waitForStatus(stack, p.id, 'failed', 90_000);
    expect(failed.lastError).toContain(address);

    const [role] = await stack.database.db
      .insert(roles)
      .values({ name: `no-machines-${uid()}`, permissions: ['templates.view', 'processes.view'] })
      .returning();
    const blind = await makeActor(stack, [], 'lp-blind-err');
    await stack.database.db.insert(roleGrants).values({ userId: blind.id, roleId: role!.id, templateId: null });
    const answers: Array<[string, LightMyRequestResponse]> = [
      ['page', await viaSession(t.app, blind, { method: 'GET', url: `/training/templates/${templateId}/processes` })],
      ['row', await viaSession(t.app, blind, { method: 'GET', url: `/training/processes/${p.id}/row` })],
      ['details', await viaSession(t.app, blind, { method: 'GET', url: `/training/processes/${p.id}/details` })],
      ['api process', await viaToken(t.app, blind, { method: 'GET', url: `/api/v1/processes/${p.id}` })],
      ['api list', await viaToken(t.app, blind, { method: 'GET', url: `/api/v1/processes?templateId=${templateId}` })],
      [
        'api template processes',
        await viaToken(t.app, blind, { method: 'GET', url: `/api/v1/templates/${templateId}/processes` }),
      ],
    ];
    for (const [what, response] of answers) {
      expect(response.statusCode, what).toBe(200);
      expect(response.body, what).toContain('Launch failed');
      expect(response.body, what).not.toContain(`:${port}`);
      expect(response.body, what).toContain(machine!.name);
    }
    expect(json(answers[3]![1]).lastError).not.toContain('127.0.0.1');
    // Someone who may see machines reads the error as it was.
    const own = await viaToken(t.app, admin, { method: 'GET', url: `/api/v1/processes/${p.id}` });
    expect(json(own).lastError).toContain(address);
  }, 150_000);
});
