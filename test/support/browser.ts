// Debian's Chromium through playwright-core, as the browser tests drive it: a fresh
// profile in Russian, and the login form filled in as an operator would.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { buildApp } from '../../api/app.js';
import { loadConfig } from '../../lib/config.js';
import { TEST_SECRET, type Stack } from './stack.js';

export const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface TestBrowser {
  context: BrowserContext;
  /** Closes the browser and removes its profile. */
  close(): Promise<void>;
}

/** A headless Chromium with its own profile, Russian locale, Moscow time and a laptop-sized window. */
export async function launchChromium(): Promise<TestBrowser> {
  if (!fs.existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: the browser tests need Debian's chromium (apt-get install chromium)`);
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    args: ARGS,
    headless: true,
    viewport: { width: 1366, height: 860 },
    locale: 'ru-RU',
    timezoneId: 'Europe/Moscow',
  });
  return {
    context,
    close: async () => {
      await context.close().catch(() => undefined);
      fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/** Fills in the Russian login form the page shows and submits it (as the seeded admin unless told otherwise). */
export async function submitLogin(
  page: Page,
  user: { login: string; password: string } = { login: 'admin', password: 'admin-password-for-tests' },
): Promise<void> {
  await page.getByLabel('Логин').fill(user.login);
  await page.getByLabel('Пароль').fill(user.password);
  await page.getByRole('button', { name: 'Войти' }).click();
}

/** Opens the login page in Russian, logs in and waits to be let in. */
export async function logIn(page: Page, baseUrl: string): Promise<void> {
  await page.goto(`${baseUrl}/login?lang=ru`);
  await submitLogin(page);
  await page.waitForURL((url) => !url.pathname.startsWith('/login'));
}

/** Listens on a loopback port and returns the base URL. */
export async function listenLoopback(app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  return `http://127.0.0.1:${address.port}`;
}

/** The web app over a test stack, listening on loopback, for a browser to open. */
export async function serveStack(
  stack: Stack,
  options: { temporalUiUrl?: string | null } = {},
): Promise<{ app: FastifyInstance; baseUrl: string }> {
  const app = await buildApp({
    config: loadConfig({ LOG_LEVEL: 'warn' }, process.cwd()),
    db: stack.database.db,
    sql: stack.database.sql,
    secret: TEST_SECRET,
    temporal: { client: stack.client, connection: stack.connection },
    temporalUiUrl: options.temporalUiUrl ?? null,
  });
  return { app, baseUrl: await listenLoopback(app) };
}
