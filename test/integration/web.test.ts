// The first live pages (issue 2, item 5): log in, see Training → Training templates with
// the demo template, log out; /healthz says which of the database and Temporal answers;
// what the browser gets is escaped, and the static assets are served without a build.
import net from 'node:net';
import { Client, Connection } from '@temporalio/client';
import { eq } from 'drizzle-orm';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildApp } from '../../api/app.js';
import { openDatabase, type Database } from '../../db/client.js';
import { templates } from '../../db/schema.js';
import { loadConfig } from '../../lib/config.js';
import { freePort } from '../../lib/temporal-dev-server.js';
import { createUser } from '../../services/accounts.js';
import { DEMO_TEMPLATE_NAME, seed } from '../../services/seed.js';
import { TEST_SECRET } from '../support/app.js';
import { uid } from '../support/stack.js';

const config = loadConfig({ LOG_LEVEL: 'warn' }, process.cwd());
const htmlOf = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');

let database: Database;
let connection: Connection;
let app: FastifyInstance;
const closers: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  database = openDatabase(inject('databaseUrl'), { max: 4, applicationName: 'trainyard-web-test' });
  closers.push(() => database.close());
  await seed(database.db, { adminPassword: 'admin-password-for-tests' });
  connection = await Connection.connect({ address: inject('temporalAddress') });
  closers.push(() => connection.close());
  app = await buildApp({
    config,
    db: database.db,
    sql: database.sql,
    secret: TEST_SECRET,
    temporal: { connection, client: new Client({ connection }) },
    temporalUiUrl: null,
  });
  closers.push(() => app.close());
});
afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
});

async function newUser(role: string | null = 'viewer'): Promise<{ login: string; password: string }> {
  const login = `web-${uid()}`;
  const password = `pw-${uid()}-${uid()}`;
  await createUser(database.db, { login, password, ...(role === null ? {} : { role }) });
  return { login, password };
}

function sessionCookie(
  response: LightMyRequestResponse,
): { value: string; httpOnly?: boolean; sameSite?: string; path?: string } | undefined {
  return response.cookies.find((c) => c.name === 'ty_session');
}

async function logIn(user: { login: string; password: string }, cookies: Record<string, string> = {}): Promise<string> {
  const response = await app.inject({
    method: 'POST',
    url: '/login',
    payload: { login: user.login, password: user.password },
    cookies,
  });
  expect(response.statusCode).toBe(303);
  const cookie = sessionCookie(response);
  expect(cookie?.value).toBeTruthy();
  return cookie!.value;
}

function csrfIn(page: string): string {
  const match = /name="_csrf" value="([^"]+)"/.exec(page);
  if (!match) throw new Error('no CSRF token on the page');
  return match[1]!;
}

describe('logging in', () => {
  it('serves the login form', async () => {
    const response = await app.inject({ method: 'GET', url: '/login' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(response.body).toContain('<form method="post" action="/login"');
    expect(response.body).toMatch(/<input name="login"/);
    expect(response.body).toMatch(/<input name="password" type="password"/);
  });

  it('answers a wrong password with 401 and the error on the login page, and no session', async () => {
    const user = await newUser();
    const response = await app.inject({
      method: 'POST',
      url: '/login',
      payload: { login: user.login, password: 'wrong-password' },
    });
    expect(response.statusCode).toBe(401);
    expect(response.body).toContain('Неверный логин или пароль.');
    expect(response.body).toContain(`value="${user.login}"`);
    expect(sessionCookie(response)).toBeUndefined();

    const english = await app.inject({
      method: 'POST',
      url: '/login?lang=en',
      payload: { login: user.login, password: 'wrong-password' },
    });
    expect(english.statusCode).toBe(401);
    expect(english.body).toContain('Wrong login or password.');
  });

  it('answers an unknown login exactly as a wrong password', async () => {
    const response = await app.inject({
      method: 'POST',
      url: '/login',
      payload: { login: `nobody-${uid()}`, password: 'whatever-pw' },
    });
    expect(response.statusCode).toBe(401);
    expect(response.body).toContain('Неверный логин или пароль.');
  });

  it('answers the right password with 303 and an HttpOnly SameSite session cookie', async () => {
    const user = await newUser();
    const response = await app.inject({
      method: 'POST',
      url: '/login',
      payload: { login: user.login, password: user.password },
    });
    expect(response.statusCode).toBe(303);
    expect(response.headers.location).toBe('/');
    const cookie = sessionCookie(response);
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/' });
    expect(cookie!.value.length).toBeGreaterThanOrEqual(32);
  });

  it('goes to a same-site `next` after login, and never to another site', async () => {
    const user = await newUser();
    const login = (next: string) =>
      app.inject({ method: 'POST', url: '/login', payload: { login: user.login, password: user.password, next } });
    expect((await login('/training/templates')).headers.location).toBe('/training/templates');
    expect((await login('//evil.example/x')).headers.location).toBe('/');
    expect((await login('https://evil.example/')).headers.location).toBe('/');
    expect((await login('/\\evil.example')).headers.location).toBe('/');
  });

  it('gives a fresh session id at login: a cookie value planted before login is not the one after, and is no session', async () => {
    const user = await newUser();
    const planted = `planted-${uid()}${uid()}${uid()}`;
    const after = await logIn(user, { ty_session: planted });
    expect(after).not.toBe(planted);
    const withPlanted = await app.inject({
      method: 'GET',
      url: '/training/templates',
      cookies: { ty_session: planted },
    });
    expect(withPlanted.statusCode).toBe(303);
    const withNew = await app.inject({ method: 'GET', url: '/training/templates', cookies: { ty_session: after } });
    expect(withNew.statusCode).toBe(200);
  });
});

describe('the Training page', () => {
  it('lists the demo template under Training → Training templates, in Russian by default', async () => {
    const cookie = await logIn(await newUser());
    const response = await app.inject({ method: 'GET', url: '/training/templates', cookies: { ty_session: cookie } });
    expect(response.statusCode).toBe(200);
    expect(response.body).toContain('<html lang="ru">');
    expect(response.body).toContain(htmlOf(DEMO_TEMPLATE_NAME));
    for (const label of ['Обучение', 'Шаблоны обучения', 'Процессы']) expect(response.body).toContain(label);
    const [demo] = await database.db.select().from(templates).where(eq(templates.name, DEMO_TEMPLATE_NAME));
    expect(response.body).toContain(`href="/training/templates/${demo!.id}/processes"`);
  });

  it('speaks English with ?lang=en and remembers the choice in a cookie', async () => {
    const cookie = await logIn(await newUser());
    const response = await app.inject({
      method: 'GET',
      url: '/training/templates?lang=en',
      cookies: { ty_session: cookie },
    });
    expect(response.statusCode).toBe(200);
    expect(response.body).toContain('<html lang="en">');
    for (const label of ['>Training<', '>Training templates<', '>Processes<']) expect(response.body).toContain(label);
    expect(response.body).not.toContain('Обучение');
    expect(response.cookies.find((c) => c.name === 'ty_lang')?.value).toBe('en');

    const remembered = await app.inject({
      method: 'GET',
      url: '/training/templates',
      cookies: { ty_session: cookie, ty_lang: 'en' },
    });
    expect(remembered.body).toContain('Training templates');
  });

  it('sends a visitor without a session to the login page, with the page to come back to', async () => {
    const response = await app.inject({ method: 'GET', url: '/training/templates' });
    expect(response.statusCode).toBe(303);
    expect(response.headers.location).toBe('/login?next=%2Ftraining%2Ftemplates');
    const unknown = await app.inject({
      method: 'GET',
      url: '/training/templates',
      cookies: { ty_session: `bogus-${uid()}` },
    });
    expect(unknown.statusCode).toBe(303);
  });

  it('tells a user with no role that they may not see it', async () => {
    const cookie = await logIn(await newUser(null));
    const response = await app.inject({ method: 'GET', url: '/training/templates', cookies: { ty_session: cookie } });
    expect(response.statusCode).toBe(403);
    expect(response.body).toContain('У вас нет прав на просмотр этой страницы.');
    expect(response.body).not.toContain(htmlOf(DEMO_TEMPLATE_NAME));
  });

  it('shows a template name with markup and quotes as text, never as markup', async () => {
    const id = uid();
    const name = `<script>alert(1)</script> "quoted" 'single' & ${id}`;
    const [row] = await database.db
      .insert(templates)
      .values({ name, description: `<img src=x onerror="alert(2)"> ${id}`, command: 'true' })
      .returning();
    try {
      const cookie = await logIn(await newUser());
      const response = await app.inject({ method: 'GET', url: '/training/templates', cookies: { ty_session: cookie } });
      expect(response.statusCode).toBe(200);
      expect(response.body).toContain(`<td class="name">${htmlOf(name)}</td>`);
      expect(response.body).toContain(htmlOf(`<img src=x onerror="alert(2)"> ${id}`));
      expect(response.body).not.toContain('<script>alert(1)</script>');
      expect(response.body).not.toContain('<img src=x');
    } finally {
      await database.db.delete(templates).where(eq(templates.id, row!.id));
    }
  });

  it('echoes a login with markup back on the login page as text', async () => {
    const login = `"><script>alert(3)</script>`;
    const response = await app.inject({ method: 'POST', url: '/login', payload: { login, password: 'whatever-pw' } });
    expect(response.statusCode).toBe(401);
    expect(response.body).toContain(`value="${htmlOf(login)}"`);
    expect(response.body).not.toContain('<script>alert(3)</script>');
  });
});

describe('logging out', () => {
  it('ends the session: the old cookie no longer opens the Training page', async () => {
    const cookie = await logIn(await newUser());
    const page = await app.inject({ method: 'GET', url: '/training/templates', cookies: { ty_session: cookie } });
    const response = await app.inject({
      method: 'POST',
      url: '/logout',
      cookies: { ty_session: cookie },
      payload: { _csrf: csrfIn(page.body) },
    });
    expect(response.statusCode).toBe(303);
    expect(response.headers.location).toBe('/login');
    expect(sessionCookie(response)?.value).toBe('');
    const after = await app.inject({ method: 'GET', url: '/training/templates', cookies: { ty_session: cookie } });
    expect(after.statusCode).toBe(303);
    expect(after.headers.location).toMatch(/^\/login/);
  });

  it('accepts the CSRF token in the X-CSRF-Token header, as htmx sends it', async () => {
    const cookie = await logIn(await newUser());
    const page = await app.inject({ method: 'GET', url: '/training/templates', cookies: { ty_session: cookie } });
    const response = await app.inject({
      method: 'POST',
      url: '/logout',
      cookies: { ty_session: cookie },
      headers: { 'x-csrf-token': csrfIn(page.body) },
    });
    expect(response.statusCode).toBe(303);
    expect(
      (await app.inject({ method: 'GET', url: '/training/templates', cookies: { ty_session: cookie } })).statusCode,
    ).toBe(303);
  });

  it('refuses a logout with a session but without the CSRF token, or with a wrong one, with 403; the session lives on', async () => {
    const cookie = await logIn(await newUser());
    const missing = await app.inject({ method: 'POST', url: '/logout', cookies: { ty_session: cookie } });
    expect(missing.statusCode).toBe(403);
    const wrong = await app.inject({
      method: 'POST',
      url: '/logout',
      cookies: { ty_session: cookie },
      payload: { _csrf: `wrong-${uid()}` },
    });
    expect(wrong.statusCode).toBe(403);
    expect(
      (await app.inject({ method: 'GET', url: '/training/templates', cookies: { ty_session: cookie } })).statusCode,
    ).toBe(200);
  });
});

describe('GET /healthz', () => {
  it('answers 200 when the database and Temporal both answer', async () => {
    const response = await app.inject({ method: 'GET', url: '/healthz' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ status: 'ok', database: { ok: true }, temporal: { ok: true } });
  });

  it('answers 503 naming Temporal when Temporal does not answer', async () => {
    const deadPort = await closedPort();
    const dead = Connection.lazy({ address: `127.0.0.1:${deadPort}`, connectTimeout: 500 });
    const deadApp = await buildApp({
      config,
      db: database.db,
      sql: database.sql,
      secret: TEST_SECRET,
      temporal: { connection: dead, client: new Client({ connection: dead }) },
      temporalUiUrl: null,
    });
    try {
      const started = Date.now();
      const response = await deadApp.inject({ method: 'GET', url: '/healthz' });
      expect(Date.now() - started).toBeLessThan(5000);
      expect(response.statusCode).toBe(503);
      const body = response.json<{
        status: string;
        database: { ok: boolean };
        temporal: { ok: boolean; error?: string };
      }>();
      expect(body.status).toBe('unavailable');
      expect(body.database).toEqual({ ok: true });
      expect(body.temporal.ok).toBe(false);
      expect(body.temporal.error).toBeTruthy();
    } finally {
      await deadApp.close();
      await dead.close().catch(() => undefined);
    }
    // The client's retries of that call must be over once the app is closed: a retry that
    // fires on the closed connection throws "Channel has been shut down" where nothing catches it.
    const uncaught: unknown[] = [];
    const record = (error: unknown) => uncaught.push(error);
    process.on('uncaughtException', record);
    try {
      await new Promise((resolve) => setTimeout(resolve, 6000));
    } finally {
      process.off('uncaughtException', record);
    }
    expect(uncaught).toEqual([]);
  });

  it('answers 503 naming the database when the database does not answer', async () => {
    const deadDb = openDatabase(`postgres://postgres@127.0.0.1:${await closedPort()}/nothing`, { max: 1 });
    const deadApp = await buildApp({
      config,
      db: deadDb.db,
      sql: deadDb.sql,
      secret: TEST_SECRET,
      temporal: { connection, client: new Client({ connection }) },
      temporalUiUrl: null,
    });
    try {
      const response = await deadApp.inject({ method: 'GET', url: '/healthz' });
      expect(response.statusCode).toBe(503);
      const body = response.json<{ database: { ok: boolean; error?: string }; temporal: { ok: boolean } }>();
      expect(body.database.ok).toBe(false);
      expect(body.database.error).toBeTruthy();
      expect(body.temporal).toEqual({ ok: true });
    } finally {
      await deadApp.close();
      await deadDb.close().catch(() => undefined);
    }
  });
});

describe('static assets', () => {
  it.each([
    ['/static/htmx.min.js', 'text/javascript; charset=utf-8', 'htmx'],
    ['/static/echarts.min.js', 'text/javascript; charset=utf-8', 'echarts'],
    ['/static/app.css', 'text/css; charset=utf-8', '{'],
  ])('serves %s as %s', async (url, type, marker) => {
    const response = await app.inject({ method: 'GET', url });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe(type);
    expect(response.body.length).toBeGreaterThan(100);
    expect(response.body).toContain(marker);
  });

  it('serves nothing else from the static path', async () => {
    for (const url of ['/static/package.json', '/static/..%2Fpackage.json', '/static/%2e%2e%2fapp.ts']) {
      expect((await app.inject({ method: 'GET', url })).statusCode).toBe(404);
    }
  });
});

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const port = await freePort();
  // freePort closed its listener; make sure nothing took the port since.
  await new Promise<void>((resolve, reject) => {
    const probe = net.connect({ port, host: '127.0.0.1' });
    probe.once('connect', () => {
      probe.destroy();
      reject(new Error(`port ${port} answered`));
    });
    probe.once('error', () => resolve());
  });
  return port;
}
