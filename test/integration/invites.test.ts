// Invite links through the real app and PostgreSQL: an admin creates a user with an invite
// (JSON API or Administration → Users), the user opens the link with no login, sets a
// password and is signed in; the link works once, not after its expiry, not once replaced;
// refusals are pages in the reader's language (Russian by default); the token reaches
// neither the log nor the audit log.
import { PassThrough } from 'node:stream';
import { and, desc, eq, gt, inArray } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, roles, userInvites } from '../../db/schema.js';
import { makeActor, startApp, viaSession, viaToken, type Actor, type TestApp } from '../support/app.js';
import { startStack, uid, waitFor, type Stack } from '../support/stack.js';

let stack: Stack;
let t: TestApp;
let admin: Actor;
let log = '';

beforeAll(async () => {
  stack = await startStack({ worker: false });
  const logStream = new PassThrough();
  logStream.on('data', (chunk: Buffer) => (log += chunk.toString()));
  t = await startApp(stack, {
    env: { LOG_LEVEL: 'info', TRAINYARD_PUBLIC_URL: 'https://trainyard.example.com' },
    app: { logger: true, logStream },
  });
  admin = await makeActor(stack, [{ role: 'admin' }], 'inv-admin');
});
afterAll(async () => {
  await t?.close();
  await stack?.close();
});

interface UserBody {
  id: number;
  login: string;
  roles: Array<{ role: string; templateId: number | null }>;
  invite: { expiresAt: string } | null;
  password?: string;
  inviteUrl?: string;
}

const api = (options: Parameters<typeof viaToken>[2]) => viaToken(t.app, admin, options);

async function invited(login = `inv-${uid()}`): Promise<UserBody & { path: string; token: string }> {
  const response = await api({
    method: 'POST',
    url: '/api/v1/users',
    payload: { login, roles: [{ role: 'viewer' }], invite: true },
  });
  expect(response.statusCode, response.body).toBe(201);
  const body = response.json<UserBody>();
  const url = new URL(body.inviteUrl!);
  return { ...body, path: url.pathname, token: url.pathname.split('/').pop()! };
}

/** The invite form as a browser without a session sends it. */
const accept = (path: string, password: string, repeat = password, cookie?: string) =>
  t.app.inject({
    method: 'POST',
    url: path,
    payload: new URLSearchParams({ password, repeat }).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    ...(cookie ? { cookies: { ty_session: cookie } } : {}),
  });

const logIn = (login: string, password: string) =>
  t.app.inject({ method: 'POST', url: '/login', payload: { login, password } });

const sessionOf = (response: { cookies: Array<{ name: string; value: string }> }) =>
  response.cookies.find((c) => c.name === 'ty_session')?.value;

/** A refusal is a page of ours: a message, never a stack trace. */
function expectCleanPage(body: string) {
  expect(body).toContain('id="invite-refused"');
  expect(body).not.toMatch(/\bat \S+ \(|Error:|node_modules/);
}

describe('an invite created through /api/v1/users', () => {
  it('lets the user set a password on the link, signs them in, and then logs in with that password', async () => {
    const user = await invited();
    expect(user).not.toHaveProperty('password');
    expect(user.inviteUrl).toMatch(/^https:\/\/trainyard\.example\.com\/invite\/[A-Za-z0-9_-]{40,}$/);
    const days = (Date.parse(user.invite!.expiresAt) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(6.9);
    expect(days).toBeLessThanOrEqual(7);
    // Only the token's hash is stored.
    const [row] = await stack.database.db.select().from(userInvites).where(eq(userInvites.userId, user.id));
    expect(row!.tokenHash).not.toContain(user.token);
    // No password works before the invite is accepted.
    expect((await logIn(user.login, 'anything-at-all')).statusCode).toBe(401);

    // The page speaks Russian when the reader has chosen nothing.
    const page = await t.app.inject({ method: 'GET', url: user.path });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('<html lang="ru">');
    expect(page.body).toContain('Задайте пароль');
    expect(page.body).toContain(`value="${user.login}"`);
    expect(page.headers['referrer-policy']).toBe('no-referrer');
    const english = await t.app.inject({ method: 'GET', url: `${user.path}?lang=en` });
    expect(english.body).toContain('Set your password');

    const done = await accept(user.path, 'my-own-password-1');
    expect(done.statusCode, done.body).toBe(303);
    expect(done.headers.location).toBe('/');
    const cookie = sessionOf(done);
    expect(cookie).toBeTruthy();
    const home = await t.app.inject({ method: 'GET', url: '/training/templates', cookies: { ty_session: cookie! } });
    expect(home.statusCode).toBe(200);
    expect(home.body).toContain(user.login);

    expect((await logIn(user.login, 'my-own-password-1')).statusCode).toBe(303);
    const listed = (await api({ method: 'GET', url: '/api/v1/users' }))
      .json<{ items: UserBody[] }>()
      .items.find((u) => u.id === user.id);
    expect(listed?.invite).toBeNull();
  });

  it('works once: a second use is refused, in Russian by default and in English when asked', async () => {
    const user = await invited();
    expect((await accept(user.path, 'first-password-1')).statusCode).toBe(303);

    const again = await accept(user.path, 'second-password-2');
    expect(again.statusCode).toBe(410);
    expect(again.body).toContain('уже использована');
    expectCleanPage(again.body);
    expect(sessionOf(again)).toBeUndefined();
    const shown = await t.app.inject({ method: 'GET', url: `${user.path}?lang=en` });
    expect(shown.statusCode).toBe(410);
    expect(shown.body).toContain('This invite link has already been used.');
    expectCleanPage(shown.body);

    expect((await logIn(user.login, 'second-password-2')).statusCode).toBe(401);
    expect((await logIn(user.login, 'first-password-1')).statusCode).toBe(303);
    // Accepted: no new link for them; a reset is the way now.
    const reissue = await api({ method: 'POST', url: `/api/v1/users/${user.id}/invite` });
    expect(reissue.statusCode).toBe(409);
    expect(reissue.json<{ error: { message: string } }>().error.message).toContain('Reset their password');
  });

  it('refuses an expired link, and a new invite replaces the old link', async () => {
    const user = await invited();
    await stack.database.db
      .update(userInvites)
      .set({ expiresAt: new Date(Date.now() - 60_000) })
      .where(eq(userInvites.userId, user.id));

    const page = await t.app.inject({ method: 'GET', url: user.path });
    expect(page.statusCode).toBe(410);
    expect(page.body).toContain('Срок действия ссылки-приглашения истёк');
    expectCleanPage(page.body);
    const tried = await accept(user.path, 'too-late-password');
    expect(tried.statusCode).toBe(410);
    expect(sessionOf(tried)).toBeUndefined();
    expect((await logIn(user.login, 'too-late-password')).statusCode).toBe(401);

    const reissue = await api({ method: 'POST', url: `/api/v1/users/${user.id}/invite` });
    expect(reissue.statusCode, reissue.body).toBe(200);
    const { inviteUrl, user: after } = reissue.json<{ user: UserBody; inviteUrl: string }>();
    expect(Date.parse(after.invite!.expiresAt)).toBeGreaterThan(Date.now());
    const fresh = new URL(inviteUrl).pathname;
    expect(fresh).not.toBe(user.path);

    const old = await t.app.inject({ method: 'GET', url: `${user.path}?lang=en` });
    expect(old.statusCode).toBe(404);
    expect(old.body).toContain('This invite link is not valid');
    expect((await accept(fresh, 'in-time-password')).statusCode).toBe(303);
    expect((await logIn(user.login, 'in-time-password')).statusCode).toBe(303);
  });

  it('answers an unknown link with a page in Russian, not an error', async () => {
    for (const path of ['/invite/not-a-real-token', `/invite/${'x'.repeat(300)}`]) {
      const page = await t.app.inject({ method: 'GET', url: path });
      expect(page.statusCode, path).toBeLessThan(500);
      expect(page.body, path).not.toMatch(/\bat \S+ \(|node_modules/);
    }
    const page = await t.app.inject({ method: 'GET', url: '/invite/not-a-real-token' });
    expect(page.statusCode).toBe(404);
    expect(page.body).toContain('Ссылка-приглашение недействительна');
    expectCleanPage(page.body);
    const posted = await accept('/invite/not-a-real-token', 'whatever-password');
    expect(posted.statusCode).toBe(404);
    expectCleanPage(posted.body);
  });

  it('holds the password to the usual rules and keeps the link usable after a refusal', async () => {
    const user = await invited();
    const short = await accept(user.path, 'short');
    expect(short.statusCode).toBe(400);
    expect(short.body).toContain('В пароле нужно не меньше 8 символов.');
    const differ = await accept(user.path, 'one-password-1', 'other-password-2');
    expect(differ.statusCode).toBe(400);
    expect(differ.body).toContain('Пароли не совпадают.');
    expect(sessionOf(differ)).toBeUndefined();
    expect((await accept(user.path, 'finally-a-password')).statusCode).toBe(303);
  });

  it('accepts in a browser where an admin is signed in, replacing that session', async () => {
    const user = await invited();
    const other = await makeActor(stack, [{ role: 'admin' }], 'inv-shared');
    const done = await accept(user.path, 'shared-browser-pw', undefined, other.cookie);
    expect(done.statusCode, done.body).toBe(303);
    const mine = sessionOf(done)!;
    expect(mine).not.toBe(other.cookie);
    const who = await t.app.inject({ method: 'GET', url: '/training/templates', cookies: { ty_session: mine } });
    expect(who.body).toContain(user.login);
    const old = await t.app.inject({
      method: 'GET',
      url: '/training/templates',
      cookies: { ty_session: other.cookie },
    });
    expect(old.statusCode).toBe(303);
  });

  it('refuses a password together with an invite', async () => {
    const response = await api({
      method: 'POST',
      url: '/api/v1/users',
      payload: { login: `both-${uid()}`, password: 'a-given-password', invite: true, roles: [] },
    });
    expect(response.statusCode).toBe(400);
    expect(response.json<{ error: { field?: string } }>().error.field).toBe('invite');
  });

  it('audits issued and accepted invites, and keeps the token out of the log and the audit log', async () => {
    const [last] = await stack.database.db.select().from(auditEvents).orderBy(desc(auditEvents.id)).limit(1);
    const before = last?.id ?? 0;
    const user = await invited();
    const reissued = await api({ method: 'POST', url: `/api/v1/users/${user.id}/invite` });
    const second = new URL(reissued.json<{ inviteUrl: string }>().inviteUrl).pathname;
    const token = second.split('/').pop()!;
    await t.app.inject({ method: 'GET', url: second });
    await accept(second, 'short');
    expect((await accept(second, 'audited-password')).statusCode).toBe(303);
    await accept(second, 'audited-password');

    const rows = await waitFor('four audit rows', async () => {
      const found = await stack.database.db
        .select()
        .from(auditEvents)
        .where(
          and(
            eq(auditEvents.targetId, String(user.id)),
            inArray(auditEvents.action, ['user.create', 'user.invite', 'user.invite_accept']),
          ),
        )
        .orderBy(auditEvents.id);
      return found.length >= 4 ? found : null;
    });
    expect(rows.map((r) => [r.action, r.outcome, r.actorLogin])).toEqual([
      ['user.create', 'ok', admin.login],
      ['user.invite', 'ok', admin.login],
      ['user.invite_accept', 'invalid', user.login],
      ['user.invite_accept', 'ok', user.login],
    ]);
    expect(rows[0]!.detail).toMatchObject({ invite: true });
    // The refused second use is audited too, without an actor (nobody proved who they are).
    const refused = await waitFor('the refused second use', async () => {
      const [found] = await stack.database.db
        .select()
        .from(auditEvents)
        .where(
          and(
            gt(auditEvents.id, before),
            eq(auditEvents.action, 'user.invite_accept'),
            eq(auditEvents.outcome, 'refused'),
          ),
        );
      return found ?? null;
    });
    expect(refused.actorLogin).toBeNull();
    expect(refused.detail).toMatchObject({ path: '/invite/…', refused: 'used', status: 410 });

    const everything = JSON.stringify(await stack.database.db.select().from(auditEvents));
    expect(everything).not.toContain(token);
    expect(everything).not.toContain(user.token);
    await waitFor('the log to hold the invite requests', async () => (log.includes('/invite/…') ? true : null));
    expect(log).not.toContain(token);
    expect(log).not.toContain(user.token);
  });

  it('is described in the OpenAPI document', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/api/v1/openapi.json' });
    expect(response.statusCode).toBe(200);
    const doc = response.json<{
      paths: Record<string, Record<string, unknown>>;
      components: { schemas: Record<string, { properties: Record<string, unknown> }> };
    }>();
    expect(doc.paths['/api/v1/users/{id}/invite']).toHaveProperty('post');
    expect(doc.components.schemas.UserCreate!.properties).toHaveProperty('invite');
    expect(doc.components.schemas.UserCreated!.properties).toHaveProperty('inviteUrl');
    expect(doc.components.schemas.User!.properties).toHaveProperty('invite');
  });
});

describe('Administration → Users', () => {
  it('creates a user with an invite link shown once, lists the invite and issues a new link', async () => {
    const viewer = (await stack.database.db.select().from(roles).where(eq(roles.name, 'viewer')))[0]!;
    const login = `page-inv-${uid()}`;
    const created = await viaSession(t.app, admin, {
      method: 'POST',
      url: '/admin/users',
      payload: { login, name: '', roleId: String(viewer.id), templateId: '', credential: 'invite' },
    });
    expect(created.statusCode, created.body).toBe(200);
    expect(created.body).not.toContain('id="one-time-password"');
    expect(created.body).toContain('Отправьте ему эту ссылку-приглашение сейчас');
    const link = /id="invite-link"[\s\S]*?value="([^"]+)"/.exec(created.body)?.[1];
    expect(link).toMatch(/^https:\/\/trainyard\.example\.com\/invite\//);

    const listed = await viaSession(t.app, admin, { method: 'GET', url: '/admin/users' });
    expect(listed.body).not.toContain(link!);
    const row = new RegExp(`data-login="${login}"[\\s\\S]*?</tr>`).exec(listed.body)?.[0] ?? '';
    expect(row).toContain('приглашён, до');
    const id = new RegExp(`data-user-id="(\\d+)" data-login="${login}"`).exec(listed.body)?.[1];
    expect(id).toBeTruthy();
    expect(row).toContain(`/admin/users/${id}/invite`);

    const reissued = await viaSession(t.app, admin, {
      method: 'POST',
      url: `/admin/users/${id}/invite?lang=en`,
      payload: {},
    });
    expect(reissued.statusCode).toBe(200);
    expect(reissued.body).toContain('the previous one no longer works');
    const next = /id="invite-link"[\s\S]*?value="([^"]+)"/.exec(reissued.body)?.[1];
    expect(next).toBeTruthy();
    expect(next).not.toBe(link);
    expect((await t.app.inject({ method: 'GET', url: new URL(link!).pathname })).statusCode).toBe(404);
    expect((await accept(new URL(next!).pathname, 'from-the-page-pw')).statusCode).toBe(303);

    // Accepted: a new link is refused on the page, in the reader's language.
    const refused = await viaSession(t.app, admin, {
      method: 'POST',
      url: `/admin/users/${id}/invite?lang=ru`,
      payload: {},
    });
    expect(refused.statusCode).toBe(409);
    expect(refused.body).toContain('нет ожидающего приглашения');
  });
});
