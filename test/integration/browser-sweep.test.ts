// The sweep page's compare chart in a real browser (Debian's Chromium through playwright-core)
// against the real server, Temporal, PostgreSQL and worker: ticking processes draws one
// curve each of the chosen metric, without a reload; the Compare button's reload draws the same.
import type { FastifyInstance } from 'fastify';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSweep } from '../../services/sweeps.js';
import { launchChromium, logIn, serveStack, type TestBrowser } from '../support/browser.js';
import { exampleTemplate, localMachine, startStack, waitForStatus, type Stack } from '../support/stack.js';

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

/** The series the echarts instance of the compare chart draws: their names and point counts. */
function drawn(page: Page): Promise<Array<{ name: string; points: number }>> {
  return page.evaluate(() => {
    // In the page: its echarts global and the compare chart's element.
    const g = globalThis as unknown as {
      echarts?: { getInstanceByDom(el: unknown): { getOption(): { series: unknown[] } } | undefined };
      document: { getElementById(id: string): unknown };
    };
    const el = g.document.getElementById('compare-chart');
    const chart = el && g.echarts ? g.echarts.getInstanceByDom(el) : undefined;
    if (!chart) return [];
    return (chart.getOption().series as Array<{ name: string; data: unknown[] }>).map((s) => ({
      name: s.name,
      points: s.data.length,
    }));
  });
}

describe('the sweep page in a browser', () => {
  it('draws one curve of the chosen metric per ticked process, and the Compare button reloads to the same', async () => {
    const template = await exampleTemplate(stack, { learning_rate: 0.01 }, { totalSteps: 60 });
    const local = await localMachine(stack);
    const sweep = await createSweep(stack.deps, template.id, {
      machineIds: [local.id],
      grid: { learning_rate: [0.3, 0.01, 0.001] },
      start: true,
    });
    const ids = sweep.processes.map((p) => p.id);
    for (const id of ids) await waitForStatus(stack, id, 'completed', 120_000);
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    try {
      await logIn(page, baseUrl);
      await page.goto(`${baseUrl}/training/sweeps/${sweep.id}?metric=loss`);
      expect(await page.locator('#compare-section').isVisible()).toBe(false);

      await page.locator(`input[name="compare"][value="${ids[0]}"]`).check();
      await page.locator(`input[name="compare"][value="${ids[2]}"]`).check();
      await expect.poll(async () => (await drawn(page)).length, { timeout: 15_000 }).toBe(2);
      expect(await page.locator('#compare-section').isVisible()).toBe(true);
      const two = await drawn(page);
      // In the table's order (sorted by the final value), so compared as a set.
      expect(two.map((s) => s.name.split(' ')[0]).sort()).toEqual([`#${ids[0]}`, `#${ids[2]}`].sort());
      for (const s of two) expect(s.points).toBeGreaterThan(1);

      await page.locator('#compare-button').click();
      await page.waitForURL((url) => url.searchParams.getAll('compare').length === 2);
      await expect.poll(async () => (await drawn(page)).length, { timeout: 15_000 }).toBe(2);

      await page.locator(`input[name="compare"][value="${ids[1]}"]`).check();
      await expect.poll(async () => (await drawn(page)).length, { timeout: 15_000 }).toBe(3);
      await page.locator(`input[name="compare"][value="${ids[0]}"]`).uncheck();
      await expect
        .poll(async () => (await drawn(page)).map((s) => s.name.split(' ')[0]).sort(), { timeout: 15_000 })
        .toEqual([`#${ids[1]}`, `#${ids[2]}`].sort());
      expect(pageErrors).toEqual([]);
    } finally {
      await page.close();
    }
  });
});
