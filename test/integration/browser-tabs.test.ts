// Ten tabs of the site in one real browser (Debian's Chromium) over HTTP/1.1, where a
// browser opens at most six connections to a site: the tabs share one live stream (a
// SharedWorker), so every tab loads, the server holds one stream for them all, and a
// status change reaches every tab within seconds.
import { and, eq, sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processes } from '../../db/schema.js';
import { STATUS_LABELS } from '../../domain/status.js';
import { launchChromium, logIn, serveStack, type TestBrowser } from '../support/browser.js';
import { exampleTemplate, localMachine, startStack, type Stack } from '../support/stack.js';

const TABS = 10;

let stack: Stack;
let app: FastifyInstance;
let baseUrl: string;
let browser: TestBrowser | undefined;

beforeAll(async () => {
  stack = await startStack();
  ({ app, baseUrl } = await serveStack(stack));
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await app?.close().catch(() => undefined);
  await stack?.close().catch(() => undefined);
});

describe('many open tabs', () => {
  it('share one live stream: ten tabs load over HTTP/1.1 and all see a status change', async () => {
    const context = browser!.context;
    const template = await exampleTemplate(stack);
    const machine = await localMachine(stack);
    const [p] = await stack.database.db
      .insert(processes)
      .values({ templateId: template.id, machineId: machine.id, status: 'stopped', name: 'tabs' })
      .returning();
    const url = `${baseUrl}/training/templates/${template.id}/processes`;
    const first = await context.newPage();
    await logIn(first, baseUrl);
    const tabs: Page[] = [first];
    for (let i = 1; i < TABS; i++) tabs.push(await context.newPage());
    // Each tab loads the page while the earlier ones hold their live feed open: a tab of its own stream each
    // would leave the seventh waiting for a connection.
    for (const tab of tabs) {
      await tab.goto(url, { timeout: 15_000 });
      await expect.poll(() => tab.locator(`#process-${p!.id}-row`).count()).toBe(1);
    }
    const protocols = await Promise.all(
      tabs.map((tab) => tab.evaluate<string>('performance.getEntriesByType("navigation")[0].nextHopProtocol')),
    );
    expect(new Set(protocols)).toEqual(new Set(['http/1.1']));
    // The server holds one stream for the ten tabs (at most two while a reconnect overlaps).
    await expect.poll(() => app.statusFeed.size, { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
    await tabs[0]!.waitForTimeout(1000);
    expect(app.statusFeed.size).toBeLessThanOrEqual(2);

    // A status change, as the workflow's mirror writes it: every tab shows it within seconds.
    const changedAt = Date.now();
    await stack.database.db
      .update(processes)
      .set({ status: 'failed', statusVersion: sql`${processes.statusVersion} + 1` })
      .where(and(eq(processes.id, p!.id)));
    await Promise.all(
      tabs.map((tab) =>
        expect
          .poll(() => tab.locator(`#process-${p!.id}-row .status .badge`).first().textContent(), { timeout: 5000 })
          .toBe(STATUS_LABELS.failed.ru),
      ),
    );
    expect(Date.now() - changedAt).toBeLessThan(5000);

    // A tab that goes away leaves the stream to the others; the last one to go ends it.
    await Promise.all(tabs.slice(1).map((tab) => tab.close()));
    await first.close();
    await expect.poll(() => app.statusFeed.size, { timeout: 10_000 }).toBe(0);
  });
});
