// The PyTorch digits trainer (trainers/pytorch-digits, Debian's python3-torch) through the
// real stack on a machine reached over a real sshd: start → running with progress and an
// ETA → stop mid-way → start again → it resumes at the checkpoint's step → completed with
// test accuracy ≥ 0.95, every step stored once across the two runs; then its monitoring
// page in a real browser (Debian's Chromium), saved as trainers/README.md's screenshot.
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { machines } from '../../db/schema.js';
import { encryptSecret } from '../../lib/keybox.js';
import { findTorchPython } from '../../lib/python.js';
import { act, createProcess, findRun, getProcess, logTail } from '../../services/processes.js';
import { pytorchDemoCommand } from '../../services/seed.js';
import { launchChromium, serveStack, logIn } from '../support/browser.js';
import { startSshd, type TestSshd } from '../support/sshd.js';
import {
  groupAlive,
  makeTemplate,
  startStack,
  storedPoints,
  TEST_SECRET,
  uid,
  waitFor,
  waitForStatus,
  writtenPoints,
  type Stack,
} from '../support/stack.js';

const TOTAL = 300;
const SCREENSHOT = path.resolve('trainers/screenshots/pytorch-monitoring.png');
let stack: Stack;
let sshd: TestSshd;
let app: FastifyInstance;
let baseUrl: string;

beforeAll(async () => {
  // Fail loudly, with what to install, rather than skip: .ci/run installs both.
  if ((await findTorchPython(['/usr/bin/python3'])) === null) {
    throw new Error(
      '/usr/bin/python3 cannot import torch and sklearn: apt-get install python3-torch python3-sklearn (.ci/run does)',
    );
  }
  sshd = await startSshd();
  stack = await startStack({ probeIntervalMs: 1000 });
  ({ app, baseUrl } = await serveStack(stack, { temporalUiUrl: 'http://127.0.0.1:8233' }));
});
afterAll(async () => {
  await app?.close();
  await stack?.close();
  await sshd?.stop();
});

/** Which steps a series has in a run's stored points. */
const stepsOf = (points: Map<string, number>, series: string) =>
  [...points.keys()]
    .filter((key) => key.startsWith(`${series}@`))
    .map((key) => Number(key.slice(series.length + 1)))
    .sort((a, b) => a - b);

interface ChartGlobals {
  document: { getElementById(id: string): unknown };
  echarts: { getInstanceByDom(el: unknown): { getOption(): { series: Array<{ name: string; data: unknown[] }> } } };
}

async function screenshotMonitoring(processId: number): Promise<void> {
  const browser = await launchChromium();
  const context = browser.context;
  try {
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await logIn(page, baseUrl);
    await page.goto(`${baseUrl}/training/processes/${processId}/monitoring?run=2&compare=1`);
    const series = () =>
      page.evaluate(() => {
        const w = globalThis as unknown as ChartGlobals;
        return w.echarts
          .getInstanceByDom(w.document.getElementById('chart'))
          .getOption()
          .series.map((s) => [s.name, s.data.length > 0]);
      });
    await expect.poll(series, { timeout: 15_000 }).toEqual([
      ['lr', true],
      ['loss', true],
      ['test_accuracy', true],
      ['lr · Прогон 1', true],
      ['loss · Прогон 1', true],
      ['test_accuracy · Прогон 1', true],
    ]);
    expect(await page.locator('#chart-state').textContent()).toBe('Прогон завершён; график полный.');
    await page.waitForTimeout(1000); // the chart's entry animation
    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT });
    expect(pageErrors).toEqual([]);
  } finally {
    await browser.close();
  }
}

describe('the PyTorch digits trainer over SSH', () => {
  it('runs, stops mid-way, resumes at the checkpoint step and completes at ≥ 0.95 test accuracy, each step stored once, both runs on its monitoring page', async () => {
    const [machine] = await stack.database.db
      .insert(machines)
      .values({
        name: `ssh-torch-${uid()}`,
        kind: 'ssh',
        address: `${sshd.host}:${sshd.port}`,
        sshUser: sshd.username,
        privateKeyEncrypted: encryptSecret(TEST_SECRET, sshd.privateKey),
        hostKeyFingerprint: sshd.hostKeyFingerprint,
        slots: 1,
      })
      .returning();
    await stack.workers!.reconcile();
    const template = await makeTemplate(stack, {
      name: `Цифры: CNN (PyTorch) ${uid()}`,
      command: pytorchDemoCommand('/usr/bin/python3'),
      // A loss line every step, so "each step once" is about every step; slowed a little
      // so there is a running phase to watch and stop in.
      params: { log_every: 1, eval_every: 25, checkpoint_every: 100, step_delay_ms: 25 },
      totalSteps: TOTAL,
      stopGraceSeconds: 30,
    });
    const process1 = await createProcess(stack.deps, { templateId: template.id, machineId: machine!.id });

    // Start: running, with progress and an ETA as the process page shows them.
    await act(stack.deps, process1.id, 'start');
    await waitForStatus(stack, process1.id, 'running', 60_000);
    const watched = await waitFor(
      'progress and an ETA',
      async () => {
        const view = await getProcess(stack.deps, process1.id);
        // A trainer that fails or ends here ends the wait too, to be reported below.
        return view.status !== 'running' || ((view.progress.step ?? 0) >= 100 && view.etaSeconds !== null)
          ? view
          : null;
      },
      120_000,
      100,
    );
    expect(`${watched.status} ${watched.lastError ?? ''}`.trim()).toBe('running');
    expect(watched.progress.totalSteps).toBe(TOTAL);
    expect(watched.progress.step).toBeLessThan(TOTAL);
    expect(watched.etaSeconds).toBeGreaterThan(0);

    // Stop mid-way: TERM, the trainer saves its checkpoint, stopped.
    await act(stack.deps, process1.id, 'stop');
    await waitForStatus(stack, process1.id, 'stopped', 60_000);
    const first = await findRun(stack.deps, process1.id, 1);
    expect(groupAlive(first.pgid!)).toBe(false);
    expect(fs.existsSync(path.join(first.runDir!, 'checkpoint.pt'))).toBe(true);
    const firstLines = fs.readFileSync(path.join(first.runDir!, 'metrics.jsonl'), 'utf8').trim().split('\n');
    const stoppedAt = (JSON.parse(firstLines.at(-1)!) as { step: number }).step;
    expect(stoppedAt).toBeGreaterThanOrEqual(100);
    expect(stoppedAt).toBeLessThan(TOTAL);
    await waitFor('the stop in the log', async () =>
      (await logTail(stack.deps, process1.id, 1)).stdout?.includes(`stopped by SIGTERM at step ${stoppedAt}/${TOTAL}`),
    );

    // Start again: a second run resumes from the first one's checkpoint and completes.
    await act(stack.deps, process1.id, 'start');
    const done = await waitForStatus(stack, process1.id, 'completed', 180_000);
    expect(done.progress.step).toBe(TOTAL);
    const second = await findRun(stack.deps, process1.id, 2);
    expect(second.runDir).not.toBe(first.runDir);
    await waitFor('the resume in the log', async () =>
      (await logTail(stack.deps, process1.id, 2)).stdout?.includes(
        `resumed from ${first.runDir}/checkpoint.pt at step ${stoppedAt}`,
      ),
    );

    // Stored is what each run wrote, nothing lost, nothing twice.
    const stored1 = await storedPoints(stack, first.id);
    const stored2 = await storedPoints(stack, second.id);
    expect(stored1).toEqual(writtenPoints(path.join(first.runDir!, 'metrics.jsonl')));
    expect(stored2).toEqual(writtenPoints(path.join(second.runDir!, 'metrics.jsonl')));
    // Every training step once across the two runs: 1…N in the first, N+1…TOTAL in the second.
    expect(stepsOf(stored1, 'loss')).toEqual(Array.from({ length: stoppedAt }, (_, i) => i + 1));
    expect(stepsOf(stored2, 'loss')).toEqual(Array.from({ length: TOTAL - stoppedAt }, (_, i) => stoppedAt + i + 1));
    for (const series of ['lr', 'loss', 'test_accuracy', 'test_loss']) {
      const again = stepsOf(stored2, series).filter((step) => stored1.has(`${series}@${step}`));
      expect(again, `${series} steps stored in both runs`).toEqual([]);
    }
    // The resumed run picks up the schedule where it stopped, and the model learned.
    expect(stepsOf(stored2, 'lr')[0]).toBe(stoppedAt + 1);
    expect(stored2.get(`test_accuracy@${TOTAL}`)).toBeGreaterThanOrEqual(0.95);

    // The monitoring page, the second run over the first (dashed): the whole training.
    await screenshotMonitoring(process1.id);
  }, 300_000);
});
