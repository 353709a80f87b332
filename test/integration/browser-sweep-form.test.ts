// Issue 12 in a real browser (Debian's Chromium through playwright-core), in Russian, against
// the real server, Temporal, PostgreSQL and worker: a 3×2 grid over two machines is added in
// the one "Добавить процессы обучения" form and started; the browser lands on the sweep's page,
// whose table fills in as the processes run, without a reload; one grid point crashes once
// after a checkpoint, and the template's restart policy runs it again from that checkpoint
// (TRAINYARD_PREVIOUS_RUN_DIR) until it completes, shown as attempt 2.
import fs from 'node:fs';
import path from 'node:path';
import { asc, eq } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processes, runs, templates } from '../../db/schema.js';
import { launchChromium, logIn, serveStack, type TestBrowser } from '../support/browser.js';
import { EXAMPLE_TRAINER, localMachine, startStack, TSX, uid, type Stack } from '../support/stack.js';

/** Where the crashing point stops in its first run, with its checkpoint saved. */
const FIRST_LEG = 60;

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

/**
 * The example trainer, except at lr 0.003 × batch 16 on its first run (no previous run dir):
 * FIRST_LEG steps (saving its checkpoint), then a crash. A param matches with the character
 * after its value, so 0.003 is not taken for 0.0035.
 */
const COMMAND = `
has() { case "$TRAINYARD_PARAMS" in *"\\"$1\\":$2"[,}]*) return 0 ;; esac; return 1; }
if [ -z "$TRAINYARD_PREVIOUS_RUN_DIR" ] && has learning_rate 0.003 && has batch_size 16; then
  TRAINYARD_TOTAL_STEPS=${FIRST_LEG} '${TSX}' '${EXAMPLE_TRAINER}' || exit $?
  echo "crashed after step ${FIRST_LEG}" >&2
  exit 1
fi
exec '${TSX}' '${EXAMPLE_TRAINER}'
`;

/** What the sweep table shows now: each row's process id, status and attempt note. */
function table(page: Page): Promise<Array<{ id: number; status: string; attempt: string }>> {
  return page.locator('#sweep-rows tr').evaluateAll((rows) =>
    rows.map((row) => ({
      id: Number(row.getAttribute('data-id')),
      status: row.querySelector('[data-status]')?.getAttribute('data-status') ?? '',
      attempt: row.querySelector('.attempt')?.textContent?.trim() ?? '',
    })),
  );
}

describe('a sweep added in the processes form, in a browser', () => {
  it('adds a 3×2 grid on two machines in one form; the table fills in live; the crashed point restarts from its checkpoint', async () => {
    const [template] = await stack.database.db
      .insert(templates)
      .values({
        name: `перебор ${uid()}`,
        command: COMMAND,
        params: { learning_rate: 0.01, batch_size: 32, step_delay_ms: 20, log_every: 10, eval_every: 30 },
        totalSteps: 150,
        stopGraceSeconds: 5,
        restart: { onFailure: 1, backoffSeconds: 0, onMachineLost: false, except: [] },
      })
      .returning();
    // Two machines with a slot for each of their three points, so none waits for another.
    const machines = [await localMachine(stack, 3), await localMachine(stack, 3)];

    const page = await browser!.context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    try {
      await logIn(page, baseUrl);
      await page.goto(`${baseUrl}/training/templates/${template!.id}/processes`);
      await page.getByRole('link', { name: 'Добавить процессы обучения' }).click();
      await page.getByLabel('Адрес целевой машины').selectOption(machines.map((m) => String(m.id)));
      await page
        .getByLabel('Перебор параметров (необязательно)')
        .fill('learning_rate = 0.01, 0.003, 0.001\nbatch_size = 16, 32');
      await page.getByLabel('Запустить сразу (в очередь на свободные слоты)').check();
      await page.getByRole('button', { name: 'Сохранить' }).click();

      // The sweep's own page, with one row per combination.
      await page.waitForURL(/\/training\/sweeps\/\d+$/);
      const sweepId = Number(new URL(page.url()).pathname.split('/').pop());
      await expect.poll(async () => (await table(page)).length, { timeout: 15_000 }).toBe(6);
      expect(await page.locator('h2').textContent()).toContain('Перебор параметров');
      // A mark in the page: still there at the end, so what follows came without a reload.
      await page.evaluate(() => ((globalThis as { sweepMark?: number }).sweepMark = 1));

      const made = await stack.database.db
        .select({ id: processes.id, params: processes.params, machineId: processes.machineId })
        .from(processes)
        .where(eq(processes.sweepId, sweepId))
        .orderBy(asc(processes.id));
      expect(made.map((p) => [p.params.learning_rate, p.params.batch_size])).toEqual([
        [0.01, 16],
        [0.01, 32],
        [0.003, 16],
        [0.003, 32],
        [0.001, 16],
        [0.001, 32],
      ]);
      // Spread round robin over the two machines: three points each.
      for (const machine of machines) expect(made.filter((p) => p.machineId === machine.id)).toHaveLength(3);
      const crashing = made.find((p) => p.params.learning_rate === 0.003 && p.params.batch_size === 16)!.id;
      // A box ticked while the rows refresh themselves stays ticked.
      const ticked = page.locator(`#compare-${made[0]!.id}`);
      await ticked.check();

      // Seen running in the table, then every row completed — all through the page's own refreshes.
      const seen = new Set<string>();
      await expect
        .poll(
          async () => {
            const rows = await table(page);
            for (const row of rows) seen.add(row.status);
            return rows.filter((row) => row.status === 'completed').length;
          },
          { timeout: 120_000, interval: 250 },
        )
        .toBe(6);
      expect(seen.has('running') || seen.has('starting') || seen.has('queued')).toBe(true);
      const rows = await table(page);
      expect(rows.find((row) => row.id === crashing)!.attempt).toBe('· попытка 2/2');
      for (const row of rows.filter((row) => row.id !== crashing)) expect(row.attempt).toBe('');
      // Every row has its final accuracy, the default metric.
      for (const cell of await page.locator('#sweep-rows td.final').allTextContents())
        expect(cell.trim()).not.toBe('—');
      expect(await page.evaluate(() => (globalThis as { sweepMark?: number }).sweepMark)).toBe(1);
      expect(await ticked.isChecked()).toBe(true);
      // Nothing under way: the rows stopped asking for themselves.
      expect(await page.locator('#sweep-rows').getAttribute('hx-trigger')).toBeNull();
      expect(pageErrors).toEqual([]);

      // The crash and the restart: run 1 failed after its checkpoint, run 2 went on from it.
      const crashRuns = await stack.database.db
        .select()
        .from(runs)
        .where(eq(runs.processId, crashing))
        .orderBy(asc(runs.number));
      expect(crashRuns.map((r) => [r.number, r.status, r.attempt])).toEqual([
        [1, 'failed', 1],
        [2, 'completed', 2],
      ]);
      expect(crashRuns[0]!.error).toContain(`crashed after step ${FIRST_LEG}`);
      const resumed = fs.readFileSync(path.join(crashRuns[1]!.runDir!, 'stdout.log'), 'utf8');
      expect(resumed).toContain(
        `resumed from ${path.join(crashRuns[0]!.runDir!, 'checkpoint.json')} at step ${FIRST_LEG}`,
      );
    } finally {
      await page.close();
    }
  });
});
