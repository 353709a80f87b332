// Users through the real app: /api/v1/users and the Administration → Users page create,
// list, change, deactivate and reset; a deactivated user's token and session answer 401
// on their next request; nothing may leave the installation without an active user who
// can manage users; every change lands in the audit log.
import { and, desc, eq, inArray, isNull, ne, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, roleGrants, roles, users } from '../../db/schema.js';
import { makeActor, startApp, viaSession, viaToken, type Actor, type TestApp } from '../support/app.js';
import { makeTemplate, startStack, uid, waitFor, type Stack } from '../support/stack.js';

let stack: Stack;
let t: TestApp;
let admin: Actor;
let operator: Actor;

beforeAll(async () => {
  stack = await startStack({ worker: false });
  t = await startApp(stack);
  admin = await makeActor(stack, [{ role: 'admin' }], 'users-admin');
  operator = await makeActor(stack, [{ role: 'operator' }], 'users-operator');
});
afterAll(async () => {
  await t?.close();
  await stack?.close();
});

interface UserBody {
  id: number;
  login: string;
  name: string;
  active: boolean;
  lastLoginAt: string | null;
  roles: Array<{ role: string; templateId: number | null }>;
  createdAt: string;
  password?: string;
}

const api = (options: Parameters<typeof viaToken>[2], actor: Pick<Actor, 'token'> | null = admin) =>
  viaToken(t.app, actor, options);

async function createUser(body: Record<string, unknown>): Promise<UserBody> {
  const response = await api({ method: 'POST', url: '/api/v1/users', payload: body });
  expect(response.statusCode, response.body).toBe(201);
  return response.json<UserBody>();
}

const logIn = (login: string, password: string) =>
  t.app.inject({ method: 'POST', url: '/login', payload: { login, password } });

const sessionCookie = (response: Awaited<ReturnType<typeof logIn>>) =>
  response.cookies.find((c) => c.name === 'ty_session')?.value;

async function listed(id: number): Promise<UserBody | undefined> {
  const response = await api({ method: 'GET', url: '/api/v1/users' });
  expect(response.statusCode).toBe(200);
  return response.json<{ items: UserBody[] }>().items.find((u) => u.id === id);
}

/** Runs `body` while `admin` is the only active user holding users.manage globally; the others come back after. */
async function asOnlyUserAdmin(body: () => Promise<void>): Promise<void> {
  const db = stack.database.db;
  const holders = await db
    .selectDistinct({ id: users.id })
    .from(roleGrants)
    .innerJoin(roles, eq(roles.id, roleGrants.roleId))
    .innerJoin(users, eq(users.id, roleGrants.userId))
    .where(
      and(
        isNull(roleGrants.templateId),
        eq(users.isActive, true),
        ne(users.id, admin.id),
        sql`'users.manage' = any(${roles.permissions})`,
      ),
    );
  const others = holders.map((h) => h.id);
  if (others.length) await db.update(users).set({ isActive: false }).where(inArray(users.id, others));
  try {
    await body();
  } finally {
    if (others.length) await db.update(users).set({ isActive: true }).where(inArray(users.id, others));
  }
}

describe('/api/v1/users', () => {
  it('creates a user with a generated one-time password, which logs them in', async () => {
    const login = `gen-${uid()}`;
    const created = await createUser({ login, name: 'Анна Петрова', roles: [{ role: 'viewer' }] });
    expect(created).toMatchObject({
      login,
      name: 'Анна Петрова',
      active: true,
      lastLoginAt: null,
      roles: [{ role: 'viewer', templateId: null }],
    });
    expect(created.password).toMatch(/^[A-Za-z0-9_-]{16,}$/);
    expect(created).not.toHaveProperty('passwordHash');

    const loggedIn = await logIn(login, created.password!);
    expect(loggedIn.statusCode).toBe(303);
    const after = await listed(created.id);
    expect(after?.lastLoginAt).not.toBeNull();
    expect(after).not.toHaveProperty('password');
  });

  it('creates a user with the password given, and returns no password', async () => {
    const template = await makeTemplate(stack, { name: `users ${uid()}`, command: 'true' });
    const login = `given-${uid()}`;
    const created = await createUser({
      login,
      password: 'a-given-password',
      roles: [{ role: 'operator', templateId: template.id }, { role: 'viewer' }],
    });
    expect(created).not.toHaveProperty('password');
    expect(created.name).toBe('');
    expect(created.roles).toEqual(
      expect.arrayContaining([
        { role: 'operator', templateId: template.id },
        { role: 'viewer', templateId: null },
      ]),
    );
    expect((await logIn(login, 'a-given-password')).statusCode).toBe(303);
    const again = await api({ method: 'POST', url: '/api/v1/users', payload: { login, roles: [] } });
    expect(again.statusCode).toBe(409);
  });

  it("changes a user's name and replaces their roles; the next request sees the new roles", async () => {
    const created = await createUser({
      login: `patch-${uid()}`,
      password: 'patch-password',
      roles: [{ role: 'viewer' }],
    });
    const cookie = sessionCookie(await logIn(created.login, 'patch-password'))!;
    const machinesAsThem = () =>
      t.app.inject({ method: 'GET', url: '/api/v1/machines', cookies: { ty_session: cookie } });
    expect((await machinesAsThem()).statusCode).toBe(200);

    const renamed = await api({ method: 'PATCH', url: `/api/v1/users/${created.id}`, payload: { name: 'New Name' } });
    expect(renamed.statusCode).toBe(200);
    expect(renamed.json<UserBody>()).toMatchObject({ name: 'New Name', roles: [{ role: 'viewer', templateId: null }] });

    const stripped = await api({ method: 'PATCH', url: `/api/v1/users/${created.id}`, payload: { roles: [] } });
    expect(stripped.statusCode).toBe(200);
    expect(stripped.json<UserBody>().roles).toEqual([]);
    expect((await machinesAsThem()).statusCode).toBe(403);

    const back = await api({
      method: 'PATCH',
      url: `/api/v1/users/${created.id}`,
      payload: { roles: [{ role: 'operator' }] },
    });
    expect(back.json<UserBody>().roles).toEqual([{ role: 'operator', templateId: null }]);
    expect((await machinesAsThem()).statusCode).toBe(200);
  });

  it("deactivation ends the user's token and session at once; reactivation brings neither back", async () => {
    const them = await makeActor(stack, [{ role: 'viewer' }], 'deact');
    expect((await viaToken(t.app, them, { method: 'GET', url: '/api/v1/machines' })).statusCode).toBe(200);
    expect((await viaSession(t.app, them, { method: 'GET', url: '/api/v1/machines' })).statusCode).toBe(200);

    const off = await api({ method: 'PATCH', url: `/api/v1/users/${them.id}`, payload: { active: false } });
    expect(off.statusCode).toBe(200);
    expect(off.json<UserBody>().active).toBe(false);
    expect((await viaToken(t.app, them, { method: 'GET', url: '/api/v1/machines' })).statusCode).toBe(401);
    expect((await viaSession(t.app, them, { method: 'GET', url: '/api/v1/machines' })).statusCode).toBe(401);
    const page = await viaSession(t.app, them, { method: 'GET', url: '/training/templates' });
    expect(page.statusCode).toBe(303);
    expect(page.headers.location).toMatch(/^\/login/);
    expect((await logIn(them.login, them.password)).statusCode).toBe(401);

    const on = await api({ method: 'PATCH', url: `/api/v1/users/${them.id}`, payload: { active: true } });
    expect(on.json<UserBody>().active).toBe(true);
    expect((await viaToken(t.app, them, { method: 'GET', url: '/api/v1/machines' })).statusCode).toBe(401);
    expect((await viaSession(t.app, them, { method: 'GET', url: '/api/v1/machines' })).statusCode).toBe(401);
    expect((await logIn(them.login, them.password)).statusCode).toBe(303);
  });

  it('resets a password: a new one-time password works, the old one and its sessions do not', async () => {
    const them = await makeActor(stack, [{ role: 'viewer' }], 'reset');
    const response = await api({ method: 'POST', url: `/api/v1/users/${them.id}/password` });
    expect(response.statusCode).toBe(200);
    const { user, password } = response.json<{ user: UserBody; password: string }>();
    expect(user.login).toBe(them.login);
    expect((await viaSession(t.app, them, { method: 'GET', url: '/api/v1/machines' })).statusCode).toBe(401);
    expect((await logIn(them.login, them.password)).statusCode).toBe(401);
    expect((await logIn(them.login, password)).statusCode).toBe(303);
    expect((await api({ method: 'POST', url: '/api/v1/users/2147483000/password' })).statusCode).toBe(404);
  });

  it('is for users.manage only: 403 for an operator, 401 without a token', async () => {
    const requests = [
      { method: 'GET' as const, url: '/api/v1/users' },
      { method: 'POST' as const, url: '/api/v1/users', payload: { login: `no-${uid()}`, roles: [] } },
      { method: 'PATCH' as const, url: `/api/v1/users/${operator.id}`, payload: { roles: [{ role: 'admin' }] } },
      { method: 'POST' as const, url: `/api/v1/users/${operator.id}/password` },
    ];
    for (const request of requests) {
      expect((await api(request, operator)).statusCode, request.url).toBe(403);
      expect((await api(request, null)).statusCode, request.url).toBe(401);
    }
    expect((await listed(operator.id))?.roles).toEqual([{ role: 'operator', templateId: null }]);
  });

  it('refuses hostile input with a 400 naming the field, and stores a hostile name as given', async () => {
    const refused: Array<[Record<string, unknown>, string]> = [
      [{ login: '<script>alert(1)</script>', roles: [] }, 'login'],
      [{ login: "x' or 1=1 --", roles: [] }, 'login'],
      [{ login: `ctl-${uid()}`, name: 'a\u0000b', roles: [] }, 'name'],
      [{ login: `role-${uid()}`, roles: [{ role: 'superuser' }] }, 'roles'],
      [{ login: `tpl-${uid()}`, roles: [{ role: 'viewer', templateId: 2147483000 }] }, 'roles'],
      [{ login: `pw-${uid()}`, password: 'short', roles: [] }, 'password'],
      [{ login: `extra-${uid()}`, roles: [], isAdmin: true }, 'isAdmin'],
      [{ login: `noroles-${uid()}` }, 'roles'],
    ];
    for (const [payload, field] of refused) {
      const response = await api({ method: 'POST', url: '/api/v1/users', payload });
      expect(response.statusCode, JSON.stringify(payload)).toBe(400);
      expect(response.json<{ error: { field?: string } }>().error.field, JSON.stringify(payload)).toBe(field);
    }

    const name = '<img src=x onerror=alert(1)> & "quoted"';
    const created = await createUser({ login: `hostile-${uid()}`, name, roles: [] });
    expect(created.name).toBe(name);
    const page = await viaSession(t.app, admin, { method: 'GET', url: '/admin/users' });
    expect(page.statusCode).toBe(200);
    expect(page.body).not.toContain('<img src=x');
    expect(page.body).toContain('&lt;img src=x onerror=alert(1)&gt; &amp; &quot;quoted&quot;');
  });

  it('refuses to leave no active user who can manage users', async () => {
    const template = await makeTemplate(stack, { name: `last ${uid()}`, command: 'true' });
    await asOnlyUserAdmin(async () => {
      for (const payload of [
        { active: false },
        { roles: [] },
        { roles: [{ role: 'operator' }] },
        { roles: [{ role: 'admin', templateId: template.id }] },
      ]) {
        const response = await api({ method: 'PATCH', url: `/api/v1/users/${admin.id}`, payload });
        expect(response.statusCode, JSON.stringify(payload)).toBe(409);
        expect(response.json<{ error: { message: string } }>().error.message).toMatch(/users\.manage/);
      }
      // Nothing changed: the admin is still active and still an admin.
      expect(await listed(admin.id)).toMatchObject({ active: true, roles: [{ role: 'admin', templateId: null }] });

      // The page says so in the reader's language.
      const ru = await viaSession(t.app, admin, {
        method: 'POST',
        url: `/admin/users/${admin.id}/active?lang=ru`,
        payload: { active: 'false' },
      });
      expect(ru.statusCode).toBe(409);
      expect(ru.body).toContain('не останется ни одного активного пользователя');
      const [grant] = await stack.database.db
        .select({ id: roleGrants.id })
        .from(roleGrants)
        .where(eq(roleGrants.userId, admin.id));
      const en = await viaSession(t.app, admin, {
        method: 'POST',
        url: `/admin/users/grants/${grant!.id}/revoke?lang=en`,
        payload: {},
      });
      expect(en.statusCode).toBe(409);
      expect(en.body).toContain('no active user would be left who can manage users');

      // Another admin makes the change possible.
      const second = await createUser({ login: `second-${uid()}`, roles: [{ role: 'admin' }] });
      const off = await api({ method: 'PATCH', url: `/api/v1/users/${second.id}`, payload: { active: false } });
      expect(off.statusCode).toBe(200);
      const on = await api({ method: 'PATCH', url: `/api/v1/users/${second.id}`, payload: { active: true } });
      expect(on.statusCode).toBe(200);
      const demote = await api({ method: 'PATCH', url: `/api/v1/users/${second.id}`, payload: { roles: [] } });
      expect(demote.statusCode).toBe(200);
    });
  });

  it('audits every change with who did it, to whom, and the outcome', async () => {
    const created = await createUser({ login: `audited-${uid()}`, roles: [{ role: 'viewer' }] });
    await api({ method: 'PATCH', url: `/api/v1/users/${created.id}`, payload: { active: false } });
    await api({ method: 'POST', url: `/api/v1/users/${created.id}/password` });
    await api({ method: 'PATCH', url: `/api/v1/users/${created.id}`, payload: { roles: [{ role: 'nope' }] } });
    const rows = await waitFor('four audit rows', async () => {
      const found = await stack.database.db
        .select()
        .from(auditEvents)
        .where(and(eq(auditEvents.targetType, 'user'), eq(auditEvents.targetId, String(created.id))))
        .orderBy(desc(auditEvents.id));
      return found.length >= 4 ? found : null;
    });
    expect(rows.map((r) => [r.action, r.outcome, r.actorLogin]).reverse()).toEqual([
      ['user.create', 'ok', admin.login],
      ['user.update', 'ok', admin.login],
      ['user.reset_password', 'ok', admin.login],
      ['user.update', 'invalid', admin.login],
    ]);
    expect(JSON.stringify(rows)).not.toMatch(/"password":"/);
  });
});

describe('Administration → Users', () => {
  it('lists users with roles, last login and state, and creates one showing the password once', async () => {
    const page = await viaSession(t.app, admin, { method: 'GET', url: '/admin/users?lang=ru' });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('Пользователи');
    expect(page.body).toContain(`data-login="${operator.login}"`);

    const viewer = (await stack.database.db.select().from(roles).where(eq(roles.name, 'viewer')))[0]!;
    const login = `page-${uid()}`;
    const created = await viaSession(t.app, admin, {
      method: 'POST',
      url: '/admin/users',
      payload: { login, name: 'Со страницы', roleId: String(viewer.id), templateId: '' },
    });
    expect(created.statusCode).toBe(200);
    const password = /id="one-time-password"[\s\S]*?value="([^"]+)"/.exec(created.body)?.[1];
    expect(password).toBeTruthy();
    expect((await logIn(login, password!)).statusCode).toBe(303);
    const row = (await api({ method: 'GET', url: '/api/v1/users' }))
      .json<{ items: UserBody[] }>()
      .items.find((u) => u.login === login);
    expect(row).toMatchObject({ name: 'Со страницы', roles: [{ role: 'viewer', templateId: null }] });
    // The password is shown on that one answer only.
    const again = await viaSession(t.app, admin, { method: 'GET', url: '/admin/users' });
    expect(again.body).not.toContain(password!);

    const bad = await viaSession(t.app, admin, {
      method: 'POST',
      url: '/admin/users?lang=ru',
      payload: { login: '<b>bad</b>', roleId: '' },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('Логин — от 1 до 64 символов');
  });
});
