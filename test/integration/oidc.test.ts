// Single sign-on end to end: Debian's Chromium signs in through a real OpenID Provider
// (oidc-provider on loopback, its own login and consent pages) to the real server and
// PostgreSQL. Groups map to roles at every sign-in; a local login is never taken over;
// a forged state, a forged nonce and another sign-in's code are refused with a clear page.
import { and, eq, isNull } from 'drizzle-orm';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLOW_COOKIE, openFlow, sealFlow } from '../../api/sso/flow-cookie.js';
import { auditEvents, roleGrants, roles, sessions, users } from '../../db/schema.js';
import { assertRoleMapRoles } from '../../api/server.js';
import { ConfigError, loadConfig } from '../../lib/config.js';
import { freePort } from '../../lib/temporal-dev-server.js';
import { createUser } from '../../services/accounts.js';
import { makeActor, startApp, TEST_SECRET, viaToken, type TestApp } from '../support/app.js';
import { launchChromium, type TestBrowser } from '../support/browser.js';
import { startTestProvider, type TestProvider } from '../support/oidc-provider.js';
import { startStack, uid, type Stack } from '../support/stack.js';

let stack: Stack;
let provider: TestProvider;
let web: TestApp;
let baseUrl: string;
let browser: TestBrowser | undefined;
let trap: ((url: string) => void) | null = null;

const ROLE_MAP = 'ml-admins=admin,ml-ops=operator,ml-readers=viewer';

beforeAll(async () => {
  stack = await startStack({ worker: false });
  const appPort = await freePort();
  baseUrl = `http://127.0.0.1:${appPort}`;
  provider = await startTestProvider({ port: await freePort(), redirectUri: `${baseUrl}/auth/oidc/callback` });
  web = await startApp(stack, {
    env: {
      TRAINYARD_PUBLIC_URL: baseUrl,
      TRAINYARD_OIDC_ISSUER: provider.issuer,
      TRAINYARD_OIDC_CLIENT_ID: provider.clientId,
      TRAINYARD_OIDC_CLIENT_SECRET: provider.clientSecret,
      TRAINYARD_OIDC_ROLE_MAP: ROLE_MAP,
      TRAINYARD_OIDC_SCOPES: 'openid profile groups',
    },
  });
  // Stands in for an attacker who reads the provider's redirect off the wire: while a test has
  // set `trap`, the next callback is held back before the app sees it (Playwright cannot stop
  // a request that is the end of a redirect chain).
  web.app.addHook('onRequest', async (request, reply) => {
    if (!trap || !request.url.startsWith('/auth/oidc/callback')) return;
    const take = trap;
    trap = null;
    take(`${baseUrl}${request.url}`);
    return reply.code(204).send();
  });
  await web.app.listen({ port: appPort, host: '127.0.0.1' });
  browser = await launchChromium();
  // The provider's pages import a web font; with no network here it would only stall them.
  await browser.context.route(/^https:\/\/fonts\./, (route) => route.abort());
});

afterAll(async () => {
  await browser?.close();
  await web?.close().catch(() => undefined);
  await provider?.close().catch(() => undefined);
  await stack?.close().catch(() => undefined);
});

const isApp = (url: URL) => url.origin === baseUrl;

/** A fresh page with no cookies of the app or the provider: every sign-in starts from nothing. */
async function freshPage(): Promise<{ page: Page; context: BrowserContext }> {
  const context = browser!.context;
  await context.clearCookies();
  for (const open of context.pages()) await open.close();
  return { page: await context.newPage(), context };
}

/** From the Russian login page, "Войти через SSO", then the provider's login and consent pages. */
async function throughProvider(page: Page, login: string): Promise<void> {
  await page.goto(`${baseUrl}/login?lang=ru`);
  await page.getByRole('link', { name: 'Войти через SSO' }).click();
  await page.waitForURL((url) => url.href.startsWith(provider.issuer));
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill('any password: the dev login takes any');
  await page.getByRole('button', { name: 'Sign-in' }).click();
  await page.getByRole('button', { name: 'Continue' }).click();
}

async function signIn(login: string): Promise<Page> {
  const { page } = await freshPage();
  await throughProvider(page, login);
  await page.waitForURL((url) => isApp(url) && url.pathname !== '/auth/oidc/callback');
  return page;
}

/** Signs in at the provider, and returns the redirect back to the app, which the app never got. */
async function capturedCallback(page: Page, login: string): Promise<string> {
  const captured = new Promise<string>((resolve) => {
    trap = resolve;
  });
  await throughProvider(page, login);
  return captured;
}

async function ssoUser(login: string) {
  const [row] = await stack.database.db.select().from(users).where(eq(users.login, login));
  return row;
}

async function globalRoles(userId: number): Promise<string[]> {
  const rows = await stack.database.db
    .select({ name: roles.name })
    .from(roleGrants)
    .innerJoin(roles, eq(roles.id, roleGrants.roleId))
    .where(and(eq(roleGrants.userId, userId), isNull(roleGrants.templateId)));
  return rows.map((r) => r.name).sort();
}

async function sessionCount(userId: number): Promise<number> {
  return (await stack.database.db.select().from(sessions).where(eq(sessions.userId, userId))).length;
}

describe('single sign-on through a real OpenID Provider', () => {
  it('signs a new user in with the role their group maps to, and re-derives it at every sign-in', async () => {
    const login = `alice-${uid()}`;
    provider.groups.set(login, ['ml-ops', 'unmapped-group']);
    let page = await signIn(login);
    expect(new URL(page.url()).pathname).toBe('/training/templates');
    await expect.poll(() => page.locator('header .who').textContent()).toContain(login);
    expect(await page.getByRole('link', { name: 'Администрирование' }).count()).toBe(0);

    const user = (await ssoUser(login))!;
    expect(user.oidcIssuer).toBe(provider.issuer);
    expect(user.oidcSubject).toBe(login);
    expect(user.name).toBe(`SSO ${login}`);
    expect(await globalRoles(user.id)).toEqual(['operator']);
    const [audit] = await stack.database.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.action, 'login.sso'), eq(auditEvents.actorUserId, user.id)));
    expect(audit?.outcome).toBe('ok');
    expect(audit?.detail).toMatchObject({ roles: ['operator'], created: true, groups: ['ml-ops', 'unmapped-group'] });

    // Moved from ml-ops to ml-admins at the provider: operator is gone, admin is there, same account.
    provider.groups.set(login, ['ml-admins']);
    page = await signIn(login);
    expect(await globalRoles(user.id)).toEqual(['admin']);
    expect((await ssoUser(login))!.id).toBe(user.id);
    await expect.poll(() => page.getByRole('link', { name: 'Администрирование' }).count()).toBe(1);

    // Out of every mapped group: refused with a page that says why, and the old role is gone.
    provider.groups.set(login, ['unmapped-group']);
    ({ page } = await freshPage());
    await throughProvider(page, login);
    await page.waitForURL((url) => isApp(url));
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('У вашей учётной записи здесь нет роли');
    expect(await globalRoles(user.id)).toEqual([]);
    expect(new URL(page.url()).pathname).toBe('/auth/oidc/callback');
  });

  it('never signs into a local account that holds the same login: the SSO user gets a login of their own', async () => {
    const login = `bob-${uid()}`;
    const local = await createUser(stack.database.db, { login, password: `pw-${uid()}-${uid()}`, role: 'viewer' });
    provider.groups.set(login, ['ml-readers']);
    await signIn(login);
    const sso = (await ssoUser(`${login}-sso`))!;
    expect(sso.oidcSubject).toBe(login);
    expect(await globalRoles(sso.id)).toEqual(['viewer']);
    expect(await sessionCount(local.id)).toBe(0);
    expect((await ssoUser(login))!.oidcSubject).toBeNull();
  });

  it('refuses a deactivated SSO user', async () => {
    const login = `carol-${uid()}`;
    provider.groups.set(login, ['ml-ops']);
    await signIn(login);
    const user = (await ssoUser(login))!;
    await stack.database.db.update(users).set({ isActive: false }).where(eq(users.id, user.id));
    await stack.database.db.delete(sessions).where(eq(sessions.userId, user.id));
    const { page } = await freshPage();
    await throughProvider(page, login);
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('Ваша учётная запись здесь отключена');
    expect(await sessionCount(user.id)).toBe(0);
  });

  it('refuses an answer whose state is not the one this browser sent', async () => {
    const login = `dave-${uid()}`;
    provider.groups.set(login, ['ml-ops']);
    const { page } = await freshPage();
    const callback = new URL(await capturedCallback(page, login));
    callback.searchParams.set('state', 'forged-state');
    const response = await page.goto(callback.href);
    expect(response?.status()).toBe(400);
    await expect
      .poll(() => page.getByRole('alert').textContent())
      .toContain('ответ провайдера не относится к этому входу (state)');
    expect(await ssoUser(login)).toBeUndefined();
    // The flow cookie is spent: the untouched answer, replayed now, is refused as well.
    callback.searchParams.delete('state');
    expect((await page.goto(callback.href))?.status()).toBe(400);
  });

  it('refuses an ID token whose nonce belongs to another sign-in', async () => {
    const login = `erin-${uid()}`;
    provider.groups.set(login, ['ml-ops']);
    const { page, context } = await freshPage();
    const callback = await capturedCallback(page, login);
    // Same state and PKCE verifier, another sign-in's nonce: only the nonce check can catch it.
    const cookie = (await context.cookies(`${baseUrl}/auth/oidc/callback`)).find((c) => c.name === FLOW_COOKIE)!;
    const flow = openFlow(TEST_SECRET, cookie.value)!;
    expect(flow).not.toBeNull();
    await context.addCookies([{ ...cookie, value: sealFlow(TEST_SECRET, { ...flow, nonce: `other-${uid()}` }) }]);
    const response = await page.goto(callback);
    expect(response?.status()).toBe(400);
    await expect
      .poll(() => page.getByRole('alert').textContent())
      .toContain('ID-токен выдан для другого входа (nonce)');
    expect(await ssoUser(login)).toBeUndefined();
    const refusals = await stack.database.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.action, 'login.sso'), eq(auditEvents.outcome, 'failed')));
    expect(refusals.some((r) => (r.detail as { reason?: string }).reason === 'nonce')).toBe(true);
  });

  it("refuses another sign-in's code replayed into this browser's flow", async () => {
    const victim = `frank-${uid()}`;
    provider.groups.set(victim, ['ml-admins']);
    const stolen = new URL(await capturedCallback((await freshPage()).page, victim));
    // The attacker's own sign-in, with the victim's code under the attacker's state: PKCE fails it.
    const attacker = `grace-${uid()}`;
    provider.groups.set(attacker, ['ml-readers']);
    const { page } = await freshPage();
    const own = new URL(await capturedCallback(page, attacker));
    stolen.searchParams.set('state', own.searchParams.get('state')!);
    const response = await page.goto(stolen.href);
    expect(response?.status()).toBe(400);
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('провайдер не принял код входа');
    expect(await ssoUser(victim)).toBeUndefined();
  });
});

describe('single sign-on settings at the edges', () => {
  it('starts and shows a clear error when the provider is down', async () => {
    const down = await startApp(stack, {
      env: {
        TRAINYARD_PUBLIC_URL: 'http://127.0.0.1:9',
        TRAINYARD_OIDC_ISSUER: `http://127.0.0.1:${await freePort()}`,
        TRAINYARD_OIDC_CLIENT_ID: 'nobody',
        TRAINYARD_OIDC_ROLE_MAP: '*=viewer',
      },
    });
    try {
      const response = await down.app.inject({ url: '/auth/oidc/login?lang=en' });
      expect(response.statusCode).toBe(503);
      expect(response.body).toContain('The sign-in provider cannot be reached right now');
      expect(String(response.headers['set-cookie'])).not.toContain(FLOW_COOKIE);
    } finally {
      await down.close();
    }
  });

  it('with local login off: no password form, POST /login refused, API tokens still work', async () => {
    const ssoOnly = await startApp(stack, {
      env: {
        TRAINYARD_LOCAL_LOGIN: 'false',
        TRAINYARD_PUBLIC_URL: baseUrl,
        TRAINYARD_OIDC_ISSUER: provider.issuer,
        TRAINYARD_OIDC_CLIENT_ID: provider.clientId,
        TRAINYARD_OIDC_ROLE_MAP: ROLE_MAP,
      },
    });
    try {
      const page = await ssoOnly.app.inject({ url: '/login?lang=en' });
      expect(page.body).toContain('Sign in with SSO');
      expect(page.body).not.toContain('name="password"');
      const refused = await ssoOnly.app.inject({
        method: 'POST',
        url: '/login?lang=en',
        payload: { login: 'admin', password: 'admin-password-for-tests' },
      });
      expect(refused.statusCode).toBe(403);
      expect(refused.body).toContain('Sign-in with a password is turned off here');
      expect(String(refused.headers['set-cookie'])).not.toContain('ty_session');
      const actor = await makeActor(stack, [{ role: 'viewer' }], 'sso-off');
      expect((await viaToken(ssoOnly.app, actor, { url: '/api/v1/templates' })).statusCode).toBe(200);
    } finally {
      await ssoOnly.close();
    }
  });

  it('stops the web start when the role map names a role that does not exist, and takes custom roles', async () => {
    const env = {
      TRAINYARD_PUBLIC_URL: baseUrl,
      TRAINYARD_OIDC_ISSUER: provider.issuer,
      TRAINYARD_OIDC_CLIENT_ID: provider.clientId,
    };
    const custom = `Reviewers ${uid()}`;
    await stack.database.db.insert(roles).values({ name: custom, permissions: ['templates.view'] });
    const config = loadConfig({ ...env, TRAINYARD_OIDC_ROLE_MAP: `ml-ops=operator,ml-typo=opperator,rev=${custom}` });
    const refusal = assertRoleMapRoles({ config, db: stack.database.db });
    await expect(refusal).rejects.toBeInstanceOf(ConfigError);
    await expect(refusal).rejects.toThrow(/^TRAINYARD_OIDC_ROLE_MAP names "opperator", which no role is;/);
    const fine = loadConfig({ ...env, TRAINYARD_OIDC_ROLE_MAP: `ml-ops=operator,rev=${custom}` });
    await expect(assertRoleMapRoles({ config: fine, db: stack.database.db })).resolves.toBeUndefined();
  });

  it('answers 404 on the SSO routes when single sign-on is not configured', async () => {
    const plain = await startApp(stack);
    try {
      const response = await plain.app.inject({ url: '/auth/oidc/login' });
      expect(response.statusCode).toBe(404);
      expect((await plain.app.inject({ url: '/login' })).body).not.toContain('/auth/oidc/login');
    } finally {
      await plain.close();
    }
  });
});
