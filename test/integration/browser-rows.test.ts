// Expanding a process row in a real browser (Debian's Chromium through playwright-core)
// against the real server, Temporal, PostgreSQL and worker: a click anywhere on the row
// but its controls opens the details, the ☰ menu does not, and the details stay open
// when the row is re-rendered — by the action's own answer and by the live status feed.
import type { FastifyInstance } from 'fastify';
import { type BrowserContext, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STATUS_LABELS, type ProcessStatus } from '../../domain/status.js';
import { act, createProcess } from '../../services/processes.js';
import { launchChromium, serveStack, logIn, type TestBrowser } from '../support/browser.js';
import { exampleTemplate, localMachine, startStack, type Stack } from '../support/stack.js';

let stack: Stack;
let app: FastifyInstance;
let baseUrl: string;
let context: BrowserContext;
let browser: TestBrowser | undefined;

beforeAll(async () => {
  stack = await startStack();
  ({ app, baseUrl } = await serveStack(stack));
  browser = await launchChromium();
  context = browser.context;
});

afterAll(async () => {
  await browser?.close();
  await app?.close().catch(() => undefined);
  await stack?.close().catch(() => undefined);
});

const ru = (status: ProcessStatus) => STATUS_LABELS[status].ru;

/** Whether the row's details are shown (their facts loaded, the slot not hidden) and what its chevron says. */
async function expansion(page: Page, processId: number): Promise<{ shown: boolean; expander: string | null }> {
  const details = page.locator(`#process-${processId}-details`);
  const shown =
    (await details.count()) === 1 && (await details.isVisible()) && (await details.locator('.facts').count()) === 1;
  return { shown, expander: await page.locator(`#process-${processId}-row .expander`).getAttribute('aria-expanded') };
}

/** Holds for `ms`: a re-render that would fold the details has time to happen. */
async function staysFor(
  page: Page,
  processId: number,
  ms: number,
  expected: { shown: boolean; expander: string },
): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    expect(await expansion(page, processId)).toEqual(expected);
    await page.waitForTimeout(200);
  }
}

async function badge(row: Locator): Promise<string | null> {
  return row.locator('.status .badge').textContent();
}

describe('a process row in a browser', () => {
  it('expands on a click on the row, not on its ☰ menu, and stays expanded through re-renders', async () => {
    // Slow enough to stay running through the test.
    const template = await exampleTemplate(
      stack,
      { step_delay_ms: 20, log_every: 5, eval_every: 25 },
      { totalSteps: 200_000, stopGraceSeconds: 10 },
    );
    const local = await localMachine(stack);
    const process = await createProcess(stack.deps, { templateId: template.id, machineId: local.id });
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    try {
      await logIn(page, baseUrl);
      await page.goto(`${baseUrl}/training/templates/${template.id}/processes`);
      const row = page.locator(`#process-${process.id}-row`);
      expect(await badge(row)).toBe(ru('created'));
      expect(await expansion(page, process.id)).toEqual({ shown: false, expander: 'false' });

      // A click on the name cell (not the chevron) opens the details.
      await row.locator('td.name').click();
      await expect
        .poll(() => expansion(page, process.id), { timeout: 10_000 })
        .toEqual({ shown: true, expander: 'true' });

      // The ☰ menu opens without folding them; Запустить re-renders the row (htmx swaps in the
      // action's answer, then the feed's running row): still expanded.
      await row.locator('details.menu > summary').click();
      await expect.poll(() => row.locator('.menu-list [role=menuitem]').count()).toBeGreaterThan(0);
      expect(await expansion(page, process.id)).toEqual({ shown: true, expander: 'true' });
      await row.getByRole('menuitem', { name: 'Запустить' }).click();
      await expect.poll(() => badge(row), { timeout: 30_000 }).toBe(ru('running'));
      await staysFor(page, process.id, 3000, { shown: true, expander: 'true' });

      // A status change from elsewhere reaches the page through the feed alone: still expanded.
      await act(stack.deps, process.id, 'stop');
      await expect.poll(() => badge(row), { timeout: 30_000 }).toBe(ru('stopped'));
      await staysFor(page, process.id, 1500, { shown: true, expander: 'true' });

      // A click on the machine cell folds them again; a click on the ☰ menu does not reopen them.
      await row.locator('.machine-name').click();
      await expect.poll(() => expansion(page, process.id)).toEqual({ shown: false, expander: 'false' });
      await row.locator('details.menu > summary').click();
      await staysFor(page, process.id, 1000, { shown: false, expander: 'false' });
      expect(pageErrors).toEqual([]);
    } finally {
      await act(stack.deps, process.id, 'stop').catch(() => undefined);
      await page.close();
    }
  });

  it('says in the page’s language that the server did not answer when an action cannot reach it', async () => {
    const template = await exampleTemplate(stack);
    const local = await localMachine(stack);
    const process = await createProcess(stack.deps, { templateId: template.id, machineId: local.id });
    const page = await context.newPage();
    try {
      await page.goto(`${baseUrl}/login?lang=ru`);
      if (new URL(page.url()).pathname.startsWith('/login')) {
        await page.getByLabel('Логин').fill('admin');
        await page.getByLabel('Пароль').fill('admin-password-for-tests');
        await page.getByRole('button', { name: 'Войти' }).click();
        await page.waitForURL((url) => !url.pathname.startsWith('/login'));
      }
      // Every action is cut off before it reaches the server, as when the network is down.
      await page.route(`${baseUrl}/training/processes/${process.id}/*`, (route) =>
        route.request().method() === 'POST' ? route.abort('connectionfailed') : route.continue(),
      );
      for (const [lang, start, text] of [
        ['ru', 'Запустить', 'Сервер не ответил; проверьте соединение и попробуйте ещё раз.'],
        ['en', 'Start', 'The server did not answer; check the connection and try again.'],
      ] as const) {
        await page.goto(`${baseUrl}/training/templates/${template.id}/processes?lang=${lang}`);
        const row = page.locator(`#process-${process.id}-row`);
        await row.locator('details.menu > summary').click();
        await row.getByRole('menuitem', { name: start }).click();
        await expect.poll(() => page.locator('#flash [role=alert]').textContent(), { timeout: 10_000 }).toBe(text);
      }
      expect(await badge(page.locator(`#process-${process.id}-row`))).toBe('Created');
    } finally {
      await page.close();
    }
  });
});
