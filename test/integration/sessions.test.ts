// Sessions and tokens as an attacker would try them: a planted session id is worth
// nothing after login, logout ends the session, a state change without the CSRF token
// is refused, an expired or revoked token answers 401. Tokens are shown once, stored
// hashed and revocable by their owner only; logins (both outcomes), token and role
// changes land in the audit log, which admins filter on their page.
import { and, desc, eq } from 'drizzle-orm';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiTokens, auditEvents, sessions } from '../../db/schema.js';
import { sha256 } from '../../services/passwords.js';
import { makeActor, startApp, type Actor, type TestApp } from '../support/app.js';
import { startStack, uid, waitFor, type Stack } from '../support/stack.js';

let stack: Stack;
let t: TestApp;
let admin: Actor;

beforeAll(async () => {
  stack = await startStack({ worker: false });
  t = await startApp(stack);
  admin = await makeActor(stack, [{ role: 'admin' }], 'sess-admin');
});
afterAll(async () => {
  await t?.close();
  await stack?.close();
});

const sessionOf = (response: LightMyRequestResponse) => response.cookies.find((c) => c.name === 'ty_session');

async function logIn(actor: Actor, cookies: Record<string, string> = {}, headers: Record<string, string> = {}) {
  return t.app.inject({
    method: 'POST',
    url: '/login',
    payload: { login: actor.login, password: actor.password },
    cookies,
    headers,
  });
}

const asBrowser = (cookie: string, url: string) =>
  t.app.inject({ method: 'GET', url, cookies: { ty_session: cookie } });

async function auditRows(where: { action: string; actor?: string }) {
  return stack.database.db
    .select()
    .from(auditEvents)
    .where(
      where.actor
        ? and(eq(auditEvents.action, where.action), eq(auditEvents.actorLogin, where.actor))
        : eq(auditEvents.action, where.action),
    )
    .orderBy(desc(auditEvents.id));
}

describe('sessions', () => {
  it('gives a new session id at login, so a planted one is worth nothing', async () => {
    const user = await makeActor(stack, [{ role: 'viewer' }], 'fixation');
    const planted = 'attacker-chosen-session-value';
    const first = await logIn(user, { ty_session: planted });
    expect(first.statusCode).toBe(303);
    const cookie = sessionOf(first)!;
    expect(cookie.value).not.toBe(planted);
    expect(cookie.httpOnly).toBe(true);
    expect(cookie.sameSite).toBe('Lax');
    expect((await asBrowser(planted, '/account/tokens')).statusCode).toBe(303);

    // Logging in again with a live session replaces it: the old id stops working.
    const second = await logIn(user, { ty_session: cookie.value });
    const renewed = sessionOf(second)!;
    expect(renewed.value).not.toBe(cookie.value);
    expect((await asBrowser(cookie.value, '/account/tokens')).statusCode).toBe(303);
    expect((await asBrowser(renewed.value, '/account/tokens')).statusCode).toBe(200);
    // The database keeps only a hash of the cookie.
    const [row] = await stack.database.db
      .select()
      .from(sessions)
      .where(eq(sessions.id, sha256(renewed.value)));
    expect(row).toBeTruthy();
    expect(JSON.stringify(row)).not.toContain(renewed.value);
  });

  it('marks the cookie Secure behind TLS (told so by the proxy TRUST_PROXY names)', async () => {
    const user = await makeActor(stack, [{ role: 'viewer' }], 'tls');
    const behindProxy = await startApp(stack, { env: { TRUST_PROXY: '127.0.0.1' } });
    try {
      const response = await behindProxy.app.inject({
        method: 'POST',
        url: '/login',
        payload: { login: user.login, password: user.password },
        headers: { 'x-forwarded-proto': 'https' },
      });
      expect(sessionOf(response)!.secure).toBe(true);
    } finally {
      await behindProxy.close();
    }
  });

  it('ends the session at logout', async () => {
    const user = await makeActor(stack, [{ role: 'viewer' }], 'logout');
    expect((await asBrowser(user.cookie, '/account/tokens')).statusCode).toBe(200);
    const out = await t.app.inject({
      method: 'POST',
      url: '/logout',
      cookies: { ty_session: user.cookie },
      payload: { _csrf: user.csrf },
    });
    expect(out.statusCode).toBe(303);
    expect((await asBrowser(user.cookie, '/account/tokens')).statusCode).toBe(303);
    const [row] = await stack.database.db
      .select()
      .from(sessions)
      .where(eq(sessions.id, sha256(user.cookie)));
    expect(row).toBeUndefined();
    await waitFor(
      'the logout audit row',
      async () => (await auditRows({ action: 'logout', actor: user.login })).length === 1,
      5000,
    );
  });

  it('refuses a state change made with the cookie but without the CSRF token (403)', async () => {
    const user = await makeActor(stack, [{ role: 'operator' }], 'csrf');
    const post = (extra: { headers?: Record<string, string>; payload?: Record<string, string> }) =>
      t.app.inject({
        method: 'POST',
        url: '/account/tokens',
        cookies: { ty_session: user.cookie },
        headers: extra.headers ?? {},
        payload: { name: 'x', ...extra.payload },
      });
    const missing = await post({});
    expect(missing.statusCode).toBe(403);
    expect(missing.body).toMatch(/CSRF/);
    expect((await post({ headers: { 'x-csrf-token': 'wrong' } })).statusCode).toBe(403);
    expect((await post({ payload: { _csrf: `${user.csrf}x` } })).statusCode).toBe(403);
    expect((await post({ payload: { _csrf: user.csrf } })).statusCode).toBe(200);
    expect((await post({ headers: { 'x-csrf-token': user.csrf } })).statusCode).toBe(200);
    // The JSON API with a cookie is a browser too.
    const api = await t.app.inject({
      method: 'POST',
      url: '/api/v1/processes/1/stop',
      cookies: { ty_session: user.cookie },
    });
    expect(api.statusCode).toBe(403);
    const logout = await t.app.inject({ method: 'POST', url: '/logout', cookies: { ty_session: user.cookie } });
    expect(logout.statusCode).toBe(403);
  });

  it('records logins, failed ones too, and slows down guessing', async () => {
    const user = await makeActor(stack, [{ role: 'viewer' }], 'guess');
    expect((await logIn(user)).statusCode).toBe(303);
    const wrong = await t.app.inject({
      method: 'POST',
      url: '/login',
      payload: { login: user.login, password: 'not-the-password' },
    });
    expect(wrong.statusCode).toBe(401);
    await waitFor(
      'login audit rows',
      async () => {
        const rows = await auditRows({ action: 'login', actor: user.login });
        return (
          rows.some((r) => r.outcome === 'ok' && r.actorUserId === user.id) && rows.some((r) => r.outcome === 'failed')
        );
      },
      5000,
    );
    let status = 0;
    for (let i = 0; i < 12 && status !== 429; i++) {
      status = (
        await t.app.inject({
          method: 'POST',
          url: '/login',
          payload: { login: user.login, password: `nope-${i}` },
          remoteAddress: '10.20.30.40',
        })
      ).statusCode;
    }
    expect(status).toBe(429);
    await waitFor(
      'a rate-limited login row',
      async () => (await auditRows({ action: 'login', actor: user.login })).some((r) => r.outcome === 'rate_limited'),
      5000,
    );
  }, 60_000);
});

describe('API tokens', () => {
  const api = (token: string, url = '/api/v1/templates') =>
    t.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } });

  it('are created on the tokens page, shown once, stored hashed, and act with their user', async () => {
    const user = await makeActor(stack, [{ role: 'viewer' }], 'tokpage');
    const name = `ci <b>${uid()}</b>`;
    const created = await t.app.inject({
      method: 'POST',
      url: '/account/tokens',
      cookies: { ty_session: user.cookie },
      payload: { _csrf: user.csrf, name, expiresDays: '30' },
    });
    expect(created.statusCode).toBe(200);
    expect(created.headers['cache-control']).toBe('no-store');
    const token = /value="(ty_[A-Za-z0-9_-]+)"/.exec(created.body)?.[1];
    expect(token).toBeTruthy();
    expect(created.body).toContain('ci &lt;b&gt;');
    expect(created.body).not.toContain('<b>');

    const page = await asBrowser(user.cookie, '/account/tokens');
    expect(page.body).not.toContain(token!);
    expect(page.body).toContain('ci &lt;b&gt;');
    const [row] = await stack.database.db
      .select()
      .from(apiTokens)
      .where(eq(apiTokens.tokenHash, sha256(token!)));
    expect(row!.name).toBe(name);
    expect(row!.expiresAt!.getTime()).toBeGreaterThan(Date.now() + 29 * 86_400_000);
    expect(row!.lastUsedAt).toBeNull();

    expect((await api(token!)).statusCode).toBe(200);
    // The viewer's token has the viewer's permissions, no more.
    expect(
      (
        await t.app.inject({
          method: 'POST',
          url: '/api/v1/templates',
          headers: { authorization: `Bearer ${token}` },
          payload: { name: 'x', command: 'y' },
        })
      ).statusCode,
    ).toBe(403);
    const [used] = await stack.database.db.select().from(apiTokens).where(eq(apiTokens.id, row!.id));
    expect(used!.lastUsedAt).not.toBeNull();
    await waitFor(
      'the token.create audit row',
      async () => (await auditRows({ action: 'token.create', actor: user.login })).length === 1,
      5000,
    );
  });

  it('answers 401 once revoked, and only its owner can revoke it', async () => {
    const owner = await makeActor(stack, [{ role: 'viewer' }], 'owner');
    const other = await makeActor(stack, [{ role: 'admin' }], 'other');
    const [row] = await stack.database.db
      .select()
      .from(apiTokens)
      .where(eq(apiTokens.tokenHash, sha256(owner.token)));
    const foreign = await t.app.inject({
      method: 'POST',
      url: `/account/tokens/${row!.id}/revoke`,
      cookies: { ty_session: other.cookie },
      payload: { _csrf: other.csrf },
    });
    expect(foreign.statusCode).toBe(404);
    expect((await api(owner.token)).statusCode).toBe(200);

    const revoked = await t.app.inject({
      method: 'POST',
      url: `/account/tokens/${row!.id}/revoke`,
      cookies: { ty_session: owner.cookie },
      payload: { _csrf: owner.csrf },
    });
    expect(revoked.statusCode).toBe(303);
    const after = await api(owner.token);
    expect(after.statusCode).toBe(401);
    expect(after.json().error.code).toBe('unauthenticated');
    expect((await asBrowser(owner.cookie, '/account/tokens')).body).toMatch(/revoked|отозван/);
    await waitFor(
      'token.revoke audit rows',
      async () => {
        const rows = await auditRows({ action: 'token.revoke' });
        return (
          rows.some((r) => r.actorLogin === owner.login && r.outcome === 'ok') &&
          rows.some((r) => r.actorLogin === other.login && r.outcome === 'not_found')
        );
      },
      5000,
    );
  });

  it('answers 401 once expired, and for unknown or malformed ones', async () => {
    const user = await makeActor(stack, [{ role: 'viewer' }], 'expiry');
    expect((await api(user.token)).statusCode).toBe(200);
    await stack.database.db
      .update(apiTokens)
      .set({ expiresAt: new Date(Date.now() - 1000) })
      .where(eq(apiTokens.tokenHash, sha256(user.token)));
    expect((await api(user.token)).statusCode).toBe(401);
    expect((await api('ty_unknown')).statusCode).toBe(401);
    expect(
      (await t.app.inject({ method: 'GET', url: '/api/v1/templates', headers: { authorization: 'Bearer ' } }))
        .statusCode,
    ).toBe(401);
    expect(
      (
        await t.app.inject({
          method: 'GET',
          url: '/api/v1/templates',
          headers: { authorization: 'Basic YWRtaW46YWRtaW4=' },
        })
      ).statusCode,
    ).toBe(401);
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/templates' })).statusCode).toBe(401);
    // A change tried with a bad token is still recorded, as unauthenticated.
    const marker = `/api/v1/processes/${900_000 + Math.floor(Math.random() * 99_999)}/start`;
    expect(
      (await t.app.inject({ method: 'POST', url: marker, headers: { authorization: 'Bearer ty_forged' } })).statusCode,
    ).toBe(401);
    await waitFor(
      'the unauthenticated attempt in the audit log',
      async () => {
        const rows = await auditRows({ action: 'process.start' });
        return rows.some(
          (r) => r.outcome === 'unauthenticated' && (r.detail as { path?: string } | null)?.path === marker,
        );
      },
      5000,
    );
  });

  it('cannot be minted or revoked with a token, only from a session', async () => {
    const user = await makeActor(stack, [{ role: 'admin' }], 'mint');
    const minted = await t.app.inject({
      method: 'POST',
      url: '/account/tokens',
      headers: { authorization: `Bearer ${user.token}` },
      payload: { name: 'forever' },
    });
    expect(minted.statusCode).toBe(403);
    expect(
      (
        await t.app.inject({
          method: 'GET',
          url: '/account/tokens',
          headers: { authorization: `Bearer ${user.token}` },
        })
      ).statusCode,
    ).toBe(403);
  });

  it('refuses a bad expiry on the form with the field named', async () => {
    const user = await makeActor(stack, [], 'badexpiry');
    const response = await t.app.inject({
      method: 'POST',
      url: '/account/tokens',
      cookies: { ty_session: user.cookie },
      payload: { _csrf: user.csrf, name: 'n', expiresDays: '-3' },
    });
    expect(response.statusCode).toBe(400);
    expect(response.body).toContain('Срок действия — целое число дней от 1 до 3650');
  });
});

describe('roles and the audit page', () => {
  it('lets an admin make a custom role, grant it for one template and revoke it, all audited', async () => {
    const form = (fields: Record<string, string | string[]>) => {
      const body = new URLSearchParams();
      for (const [key, value] of Object.entries({ _csrf: admin.csrf, ...fields }))
        for (const v of [value].flat()) body.append(key, v);
      return {
        payload: body.toString(),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        cookies: { ty_session: admin.cookie },
      };
    };
    const name = `watcher-${uid()}`;
    const created = await t.app.inject({
      method: 'POST',
      url: '/admin/roles',
      ...form({ name, description: 'sees one template', permissions: ['templates.view', 'processes.view'] }),
    });
    expect(created.statusCode).toBe(303);
    const page = await asBrowser(admin.cookie, '/admin/roles');
    expect(page.statusCode).toBe(200);
    const roleId = new RegExp(`data-role-id="(\\d+)">\\s*<td>\\s*<strong>${name}`).exec(page.body)?.[1];
    expect(roleId).toBeTruthy();

    const user = await makeActor(stack, [], 'watcher');
    const template = await t.app.inject({
      method: 'POST',
      url: '/api/v1/templates',
      headers: { authorization: `Bearer ${admin.token}` },
      payload: { name: `watched ${uid()}`, command: 'true' },
    });
    const templateId = template.json().id as number;
    expect((await api(user.token)).json().items ?? []).toEqual([]);
    expect(
      (
        await t.app.inject({
          method: 'POST',
          url: '/admin/grants',
          ...form({ login: user.login, roleId: roleId!, templateId: String(templateId) }),
        })
      ).statusCode,
    ).toBe(303);
    const seen = (await api(user.token)).json();
    expect(seen.items.map((x: { id: number }) => x.id)).toEqual([templateId]);

    // Built-in roles are fixed.
    const builtin = /data-role-id="(\d+)">\s*<td>\s*<strong>viewer/.exec(page.body)?.[1];
    expect(
      (
        await t.app.inject({
          method: 'POST',
          url: `/admin/roles/${builtin}`,
          ...form({ name: 'viewer', permissions: ['users.manage'] }),
        })
      ).statusCode,
    ).toBe(409);
    // A granted role cannot be deleted; its grant can be revoked.
    expect((await t.app.inject({ method: 'POST', url: `/admin/roles/${roleId}/delete`, ...form({}) })).statusCode).toBe(
      409,
    );
    const roles = await asBrowser(admin.cookie, '/admin/roles');
    const grantId = new RegExp(`data-grant-id="(\\d+)">\\s*<td>${user.login}`).exec(roles.body)?.[1];
    expect(
      (await t.app.inject({ method: 'POST', url: `/admin/grants/${grantId}/revoke`, ...form({}) })).statusCode,
    ).toBe(303);
    expect((await api(user.token)).statusCode).toBe(403);
    expect((await t.app.inject({ method: 'POST', url: `/admin/roles/${roleId}/delete`, ...form({}) })).statusCode).toBe(
      303,
    );

    await waitFor(
      'role and grant audit rows',
      async () => {
        const rows = await stack.database.db.select().from(auditEvents).where(eq(auditEvents.actorUserId, admin.id));
        const seenActions = rows.map((r) => `${r.action}:${r.outcome}`);
        return [
          'role.create:ok',
          'grant.create:ok',
          'role.update:refused',
          'role.delete:refused',
          'grant.revoke:ok',
          'role.delete:ok',
        ].every((a) => seenActions.includes(a));
      },
      5000,
    );

    const audit = await asBrowser(admin.cookie, `/admin/audit?actor=${encodeURIComponent(admin.login)}&action=role.`);
    expect(audit.statusCode).toBe(200);
    expect(audit.body).toContain('role.create');
    expect(audit.body).toContain('role.delete');
    expect(audit.body).not.toContain('grant.create');
    const refused = await asBrowser(
      admin.cookie,
      `/admin/audit?actor=${encodeURIComponent(admin.login)}&outcome=refused`,
    );
    expect(refused.body).toContain('role.update');
    expect(refused.body).not.toMatch(/<code>role\.create<\/code>/);
  });

  it('shows hostile text in the audit log as text', async () => {
    const hostile = `<script>alert(1)</script>-${uid()}`;
    await t.app.inject({ method: 'POST', url: '/login', payload: { login: hostile, password: 'whatever-password' } });
    await waitFor(
      'the failed login row',
      async () => (await auditRows({ action: 'login', actor: hostile })).length === 1,
      5000,
    );
    const page = await asBrowser(admin.cookie, `/admin/audit?action=login&outcome=failed`);
    expect(page.body).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(page.body).not.toContain('<script>alert(1)');
  });

  function api(token: string) {
    return t.app.inject({
      method: 'GET',
      url: '/api/v1/templates?limit=500',
      headers: { authorization: `Bearer ${token}` },
    });
  }
});
