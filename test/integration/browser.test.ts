// The operator's whole flow in a real browser (Debian's Chromium through playwright-core)
// against the real server, Temporal, PostgreSQL and worker, in Russian: log in → Обучение
// → Шаблоны обучения → Процессы → Добавить процессы обучения → Сохранить → Запустить →
// live "Выполняется" → details with "~До окончания" → Мониторинг обучения (a chart of
// three curves in green, blue and red) → Остановить → Выключить → Включить → Удалить.
// It measures how long a recorded status takes to show on the open page, and saves the
// screenshots the README shows.
import fs from 'node:fs';
import path from 'node:path';
import { eq } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { type BrowserContext, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metricPoints, metricSeries, processes, runs } from '../../db/schema.js';
import { menuFor, STATUS_LABELS, type ProcessStatus } from '../../domain/status.js';
import { SERIES_COLORS } from '../../views/fragments/chart-data.js';
import { act, createProcess, deleteProcess } from '../../services/processes.js';
import { launchChromium, serveStack, submitLogin, type TestBrowser } from '../support/browser.js';
import { exampleTemplate, localMachine, startStack, uid, workflowIdOf, type Stack } from '../support/stack.js';

const SCREENSHOTS = path.resolve('docs/screenshots');
const TEMPORAL_UI = 'http://127.0.0.1:8233';

let stack: Stack;
let app: FastifyInstance;
let baseUrl: string;
let context: BrowserContext;
let browser: TestBrowser | undefined;
const latencies: Array<{ status: string; ms: number }> = [];

beforeAll(async () => {
  stack = await startStack();
  ({ app, baseUrl } = await serveStack(stack, { temporalUiUrl: TEMPORAL_UI }));
  browser = await launchChromium();
  context = browser.context;
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
  await app?.close().catch(() => undefined);
  await stack?.close().catch(() => undefined);
  if (latencies.length)
    console.log(`status → page latency: ${latencies.map((l) => `${l.status} ${l.ms} ms`).join(', ')}`);
});

// What the page scripts below touch; the test's own types have no DOM library.
interface PageGlobals {
  __seen: Record<string, number>;
  __sameDocument?: boolean;
  document: {
    querySelector(selector: string): { getAttribute(name: string): string | null } | null;
    getElementById(id: string): unknown;
  };
  MutationObserver: new (callback: () => void) => { observe(target: unknown, options: Record<string, boolean>): void };
  echarts: { getInstanceByDom(el: unknown): { getOption(): unknown } };
}

const ru = (status: ProcessStatus) => STATUS_LABELS[status].ru;
const menuLabels = (status: ProcessStatus) => menuFor(status).map((item) => item.label.ru);

/** Records, in the page, when each status text first shows in the row of `processId`. */
async function watchStatuses(page: Page, processId: number): Promise<void> {
  await page.evaluate((id) => {
    const w = globalThis as unknown as PageGlobals;
    w.__seen = {};
    const note = () => {
      const badge = w.document.querySelector(`#process-${id}-row .status .badge`);
      const status = badge?.getAttribute('data-status');
      if (status && w.__seen[status] === undefined) w.__seen[status] = Date.now();
    };
    note();
    new w.MutationObserver(note).observe(w.document.getElementById('processes'), {
      subtree: true,
      childList: true,
      characterData: true,
      attributes: true,
    });
  }, processId);
}

async function seenAt(page: Page, status: ProcessStatus): Promise<number> {
  const at = await page.evaluate((s) => (globalThis as unknown as PageGlobals).__seen[s], status);
  if (typeof at !== 'number') throw new Error(`the page never showed ${status}`);
  return at;
}

/** Status recorded in the database (updated_at of the row) → shown on the page. */
async function measure(page: Page, processId: number, status: ProcessStatus): Promise<number> {
  const [row] = await stack.database.db.select().from(processes).where(eq(processes.id, processId));
  expect(row?.status).toBe(status);
  const ms = (await seenAt(page, status)) - row!.updatedAt.getTime();
  latencies.push({ status, ms });
  console.log(`status ${status}: recorded → shown on the page in ${ms} ms`);
  return ms;
}

/** The requests a page makes while left alone for `ms`. */
async function quietFor(page: Page, ms: number): Promise<string[]> {
  const seen: string[] = [];
  const onRequest = (request: { url(): string }) => seen.push(request.url());
  page.on('request', onRequest);
  await page.waitForTimeout(ms);
  page.off('request', onRequest);
  return seen;
}

async function openMenu(row: Locator): Promise<string[]> {
  await row.locator('details.menu > summary').click();
  const items = row.locator('.menu-list [role=menuitem]');
  await expect.poll(() => items.count()).toBeGreaterThan(0);
  return (await items.allTextContents()).map((s) => s.trim());
}

async function closeMenu(page: Page): Promise<void> {
  await page.keyboard.press('Escape');
}

describe('the operator flow in a browser, in Russian', () => {
  it('adds, starts, watches, stops, disables, enables and deletes a training process', async () => {
    // A readable name for the README's screenshots; hostile names are the route tests' job.
    const name = `Спирали: MLP 2×32 (${uid()})`;
    // Slow enough to stay running through the test; the ETA is long and real.
    const template = await exampleTemplate(
      stack,
      { step_delay_ms: 20, log_every: 5, eval_every: 25, warmup_steps: 150 },
      { name, totalSteps: 200_000, stopGraceSeconds: 10 },
    );

    const local = await localMachine(stack);
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));

    // Log in.
    await page.goto(`${baseUrl}/login?lang=ru`);
    await submitLogin(page);

    // Обучение → Шаблоны обучения → Процессы.
    await page.getByRole('link', { name: 'Обучение', exact: true }).click();
    await expect.poll(() => page.locator('nav.tabs a.current').textContent()).toBe('Шаблоны обучения');
    const templateRow = page.locator('#templates tr', { hasText: name });
    expect(await templateRow.locator('td.name').textContent()).toBe(name);
    await templateRow.getByRole('link', { name: 'Процессы', exact: true }).click();
    await page.waitForURL(`${baseUrl}/training/templates/${template.id}/processes`);
    expect(await page.locator('.template-name').textContent()).toBe(name);

    // Добавить процессы обучения → the local machine → Сохранить; no full reload.
    await page.evaluate(() => ((globalThis as unknown as PageGlobals).__sameDocument = true));
    await page.getByRole('link', { name: 'Добавить процессы обучения' }).click();
    const machineSelect = page.getByLabel('Адрес целевой машины');
    await machineSelect.selectOption({ label: 'local' });
    await page.getByRole('button', { name: 'Сохранить' }).click();
    const block = page.locator('tbody.process').last();
    await expect.poll(() => block.locator('.status .badge').textContent(), { timeout: 10_000 }).toBe(ru('created'));
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).__sameDocument)).toBe(true);
    expect(await page.locator('#add-process-form').count()).toBe(0);
    const processId = Number(await block.getAttribute('data-id'));
    expect(processId).toBeGreaterThan(0);
    const row = page.locator(`#process-${processId}-row`);
    await watchStatuses(page, processId);

    // ☰ of a created process → Запустить; the status goes live to Выполняется.
    expect(await openMenu(row)).toEqual(menuLabels('created'));
    await row.getByRole('menuitem', { name: 'Запустить' }).click();
    await expect.poll(() => row.locator('.status .badge').textContent(), { timeout: 30_000 }).toBe(ru('running'));
    expect(await measure(page, processId, 'running')).toBeLessThanOrEqual(1000);

    // Expanded details: ~До окончания with a value, progress, machine, run, Temporal link.
    await row.locator('.expander').click();
    const details = page.locator(`#process-${processId}-details`);
    await expect.poll(() => details.locator('.fact.eta dt').textContent()).toBe('~До окончания');
    await expect
      .poll(() => details.locator('[data-fact=eta]').textContent(), { timeout: 20_000 })
      .toMatch(/^~\d+ (д|ч|мин|с)/);
    await expect
      .poll(() => details.locator('[data-fact=progress]').textContent(), { timeout: 20_000 })
      .toMatch(/\/ 200[\s\u00a0\u202f]000 \(/);
    expect(await details.locator('[data-fact=machine]').textContent()).toContain('local');
    expect(await details.locator('[data-fact=run]').textContent()).toBe('1');
    expect(await details.locator('a[data-link=temporal]').getAttribute('href')).toBe(
      `${TEMPORAL_UI}/namespaces/default/workflows/${await workflowIdOf(stack, processId)}`,
    );
    // The stdout/stderr tail is one click away.
    await details.getByRole('button', { name: 'Показать stdout / stderr' }).click();
    await expect
      .poll(async () => (await details.locator('.logs h3').allTextContents()).slice(0, 2))
      .toEqual(['stdout', 'stderr']);
    await expect.poll(() => details.locator('pre.log').first().textContent(), { timeout: 15_000 }).not.toBe('(пусто)');

    // Мониторинг обучения: one chart, three series, green / blue / red, growing live.
    expect(await openMenu(row)).toEqual(menuLabels('running'));
    await row.getByRole('menuitem', { name: 'Мониторинг обучения' }).click();
    await page.waitForURL(`${baseUrl}/training/processes/${processId}/monitoring`);
    const option = () =>
      page.evaluate(() => {
        const w = globalThis as unknown as PageGlobals;
        const o = w.echarts.getInstanceByDom(w.document.getElementById('chart')).getOption() as {
          series: Array<{ name: string; data: unknown[]; lineStyle: { color: string } }>;
          yAxis: unknown[];
          dataZoom: unknown[];
          legend: unknown[];
        };
        return {
          series: o.series.map((s) => ({ name: s.name, color: s.lineStyle.color, points: s.data.length })),
          yAxes: o.yAxis.length,
          dataZoom: o.dataZoom.length,
          legend: o.legend.length,
        };
      });
    await expect.poll(async () => (await option()).series.length, { timeout: 15_000 }).toBe(3);
    const first = await option();
    expect(first.series.map((s) => [s.name, s.color])).toEqual([
      ['lr', SERIES_COLORS.lr],
      ['loss', SERIES_COLORS.loss],
      ['test_accuracy', SERIES_COLORS.test_accuracy],
    ]);
    expect(SERIES_COLORS).toEqual({ lr: '#2a9d4b', loss: '#2f6fdb', test_accuracy: '#d6393f' }); // green, blue, red
    expect(first.yAxes).toBe(3);
    expect(first.dataZoom).toBeGreaterThan(0);
    expect(first.legend).toBe(1);
    const lossPoints = (o: Awaited<ReturnType<typeof option>>) => o.series.find((s) => s.name === 'loss')!.points;
    await expect
      .poll(async () => lossPoints(await option()), { timeout: 15_000 })
      .toBeGreaterThan(lossPoints(first) + 5);
    expect(await page.locator('#chart-state').textContent()).toBe('График обновляется, пока идёт прогон.');
    await page.waitForTimeout(4000);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'monitoring.png') });

    // Back to the processes page; screenshot with the details open.
    await page.getByRole('link', { name: 'К процессам' }).click();
    await page.waitForURL(`${baseUrl}/training/templates/${template.id}/processes`);
    // Processes added and failing elsewhere appear on the open page by themselves.
    const idle = await createProcess(stack.deps, { templateId: template.id, machineId: local.id });
    const broken = await createProcess(stack.deps, {
      templateId: template.id,
      machineId: local.id,
      params: { learning_rate: -1 },
    });
    await act(stack.deps, broken.id, 'start');
    await expect
      .poll(() => page.locator(`#process-${idle.id}-row .status .badge`).textContent(), { timeout: 10_000 })
      .toBe(ru('created'));
    await expect
      .poll(() => page.locator(`#process-${broken.id}-row .status .badge`).textContent(), { timeout: 30_000 })
      .toBe(ru('failed'));
    // (a fresh page since monitoring)
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).__sameDocument)).toBeUndefined();
    await row.locator('.expander').click();
    await expect.poll(() => details.locator('[data-fact=eta]').textContent(), { timeout: 20_000 }).toMatch(/^~\d/);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'processes.png') });

    // ☰ → Остановить → Остановлен, live.
    await watchStatuses(page, processId);
    expect(await openMenu(row)).toEqual(menuLabels('running'));
    await row.getByRole('menuitem', { name: 'Остановить' }).click();
    await expect.poll(() => row.locator('.status .badge').textContent(), { timeout: 30_000 }).toBe(ru('stopped'));
    expect(await measure(page, processId, 'stopped')).toBeLessThanOrEqual(1000);
    // Nothing is active on the page now: no polling at all (the one event stream stays open).
    await expect.poll(() => details.locator('.facts').getAttribute('hx-trigger'), { timeout: 5000 }).toBe('refresh');
    expect(await quietFor(page, 5000)).toEqual([]);
    expect(await openMenu(row)).toEqual(menuLabels('stopped'));

    // Выключить → Выключен → Включить → Остановлен: the menu follows the status.
    await row.getByRole('menuitem', { name: 'Выключить' }).click();
    await expect.poll(() => row.locator('.status .badge').textContent(), { timeout: 15_000 }).toBe(ru('disabled'));
    expect(await openMenu(row)).toEqual(menuLabels('disabled'));
    await row.getByRole('menuitem', { name: 'Включить' }).click();
    await expect.poll(() => row.locator('.status .badge').textContent(), { timeout: 15_000 }).toBe(ru('stopped'));
    expect(await openMenu(row)).toEqual(menuLabels('stopped'));

    // Удалить asks first; the row goes once the process is gone.
    const dialogs: string[] = [];
    page.once('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.accept();
    });
    await row.getByRole('menuitem', { name: 'Удалить' }).click();
    await expect.poll(() => page.locator(`#process-${processId}`).count(), { timeout: 30_000 }).toBe(0);
    expect(dialogs).toHaveLength(1);
    expect(dialogs[0]).toContain(`Удалить процесс #${processId}`);
    await expect
      .poll(async () => (await stack.database.db.select().from(processes).where(eq(processes.id, processId))).length, {
        timeout: 30_000,
      })
      .toBe(0);
    await deleteProcess(stack.deps, idle.id);
    await deleteProcess(stack.deps, broken.id);

    expect(pageErrors).toEqual([]);
    await closeMenu(page);
    await page.close();
  });

  it('shows a NaN loss as a marked break with a warning, and overlays an earlier run', async () => {
    const template = await exampleTemplate(stack, {}, { name: `E2E NaN ${uid()}` });
    const local = await localMachine(stack);
    const [p] = await stack.database.db
      .insert(processes)
      .values({ templateId: template.id, machineId: local.id, status: 'failed' })
      .returning();
    const steps = Array.from({ length: 60 }, (_, i) => i * 10);
    for (const [number, nanAt] of [
      [1, null],
      [2, 400],
    ] as const) {
      const [run] = await stack.database.db
        .insert(runs)
        .values({
          processId: p!.id,
          number,
          templateSnapshot: {},
          machineId: local.id,
          status: number === 2 ? 'failed' : 'completed',
          startedAt: new Date(),
          finishedAt: new Date(),
        })
        .returning();
      const curves: Record<string, (step: number) => number> = {
        lr: (s) => 0.01 * Math.min(1, s / 100),
        loss: (s) =>
          nanAt !== null && s >= nanAt ? Number.NaN : 0.7 * Math.exp(-s / (number === 1 ? 300 : 200)) + 0.05,
        test_accuracy: (s) => Math.min(0.98, 0.5 + s / 1000),
      };
      for (const [name, f] of Object.entries(curves)) {
        const [series] = await stack.database.db.insert(metricSeries).values({ runId: run!.id, name }).returning();
        await stack.database.db
          .insert(metricPoints)
          .values(steps.map((step) => ({ seriesId: series!.id, step, value: f(step) })));
      }
    }
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await page.goto(`${baseUrl}/training/processes/${p!.id}/monitoring`);
    if (page.url().includes('/login')) {
      // Run on its own: log in first (the login page brings us back).
      await submitLogin(page);
      await page.waitForURL(/\/monitoring$/);
    }
    expect(await page.locator('#chart-warnings .warning').first().textContent()).toBe(
      '⚠ loss = NaN на шаге 400 (прогон 2): кривая там прерывается.',
    );
    const option = () =>
      page.evaluate(() => {
        const w = globalThis as unknown as PageGlobals;
        const o = w.echarts.getInstanceByDom(w.document.getElementById('chart')).getOption() as {
          series: Array<{
            name: string;
            data: Array<[number, number | string]>;
            lineStyle: { color: string; type: string };
            markLine?: { data: Array<{ xAxis: number }> };
          }>;
        };
        return o.series.map((s) => ({
          name: s.name,
          color: s.lineStyle.color,
          type: s.lineStyle.type,
          gaps: s.data.filter((d) => d[1] === '-').length,
          marks: (s.markLine?.data ?? []).map((m) => m.xAxis),
        }));
      });
    const single = await option();
    const loss = single.find((s) => s.name === 'loss')!;
    expect(loss.gaps).toBe(20); // steps 400…590 are NaN: a break, not a silent line
    expect(loss.marks).toEqual([400]); // …marked where it starts (and shaded to where it ends)
    // Pick the earlier run to overlay: the page reloads with both, the earlier dashed.
    await page.getByLabel('Сравнить с').selectOption('1');
    await page.waitForURL(/compare=1/);
    const overlaid = await option();
    expect(overlaid.map((s) => s.name)).toEqual([
      'lr',
      'loss',
      'test_accuracy',
      'lr · Прогон 1',
      'loss · Прогон 1',
      'test_accuracy · Прогон 1',
    ]);
    expect(overlaid.map((s) => s.type)).toEqual(['solid', 'solid', 'solid', 'dashed', 'dashed', 'dashed']);
    expect(overlaid.slice(3).map((s) => s.color)).toEqual([
      SERIES_COLORS.lr,
      SERIES_COLORS.loss,
      SERIES_COLORS.test_accuracy,
    ]);
    expect(await page.locator('#chart-state').textContent()).toBe('Прогон завершён; график полный.');
    // A final run's chart does not poll.
    expect(await quietFor(page, 4000)).toEqual([]);
    if (process.env.TRAINYARD_NAN_SHOT) await page.screenshot({ path: process.env.TRAINYARD_NAN_SHOT });
    expect(pageErrors).toEqual([]);
    await page.close();
  });
});
