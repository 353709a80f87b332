// The pure parts of notifications: event keys, Slack text, the signature, and the
// metrics-path watch for a NaN/Infinity loss (over a fake store, named so).
import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signBody } from '../../activities/notify.js';
import { eventKey, nonFiniteText, notificationWorkflowId, slackText } from '../../domain/notifications.js';
import { firstNonFiniteLoss, reportingNonFiniteLoss, type NonFiniteLoss } from '../../metrics/non-finite-loss.js';
import type { CommitBatchInput, CommitResult, MetricsStore } from '../../metrics/store.js';

describe('event keys', () => {
  it('are the same for the same run and kind, and differ across runs, kinds and installations', () => {
    expect(eventKey('i1', 'failed', { runId: 4 })).toBe(eventKey('i1', 'failed', { runId: 4 }));
    const keys = [
      eventKey('i1', 'failed', { runId: 4 }),
      eventKey('i1', 'completed', { runId: 4 }),
      eventKey('i1', 'failed', { runId: 5 }),
      eventKey('i2', 'failed', { runId: 4 }),
      eventKey('i1', 'stalled', { key: 'p4-1' }),
      eventKey('i1', 'stalled', { key: 'p4-2' }),
    ];
    expect(new Set(keys).size).toBe(keys.length);
    expect(notificationWorkflowId(keys[0]!, 3)).toBe(`notify-${keys[0]}-channel-3`);
  });
});

describe('Slack text', () => {
  const payload = {
    id: 'k',
    event: 'failed' as const,
    at: '2026-12-01T00:00:00.000Z',
    process: {
      id: 7,
      name: '<@channel> & co',
      templateId: 1,
      machineId: 1,
      status: 'failed',
      attempt: 1,
      lastError: 'boom\n<!here>',
    },
    run: { number: 2, exitCode: 3 },
  };

  it('names the process, status, run and exit code, with markup escaped', () => {
    const text = slackText(payload, null);
    expect(text).toContain('&lt;@channel&gt; &amp; co failed (status failed, run 2, exit code 3)');
    expect(text).toContain('> &lt;!here&gt;');
    expect(text).not.toMatch(/<[@!]/);
  });

  it('links to the monitoring page when the public URL is known', () => {
    expect(slackText(payload, 'https://ty.example/')).toContain('<https://ty.example/training/processes/7/monitoring|');
  });

  it('says where a loss went non-finite', () => {
    const text = slackText(
      { ...payload, event: 'non_finite_loss', metric: { name: 'val_loss', step: 9, value: nonFiniteText(-Infinity) } },
      null,
    );
    expect(text).toContain('val_loss = -Infinity at step 9');
  });
});

describe('the signature', () => {
  it('is the hex HMAC-SHA256 of the raw body under the secret', () => {
    const body = JSON.stringify({ id: 'x', text: 'é' });
    const expected = crypto.createHmac('sha256', 'k'.repeat(16)).update(Buffer.from(body, 'utf8')).digest('hex');
    expect(signBody('k'.repeat(16), body)).toBe(`sha256=${expected}`);
  });
});

describe('the non-finite loss watch', () => {
  /** A fake store: commits everything, or fences when told. */
  function fakeStore(fenced = false): MetricsStore {
    return {
      commitBatch: (input: CommitBatchInput): Promise<CommitResult> =>
        Promise.resolve(
          fenced
            ? { committed: false, reason: 'fenced', committedOffset: 0 }
            : { committed: true, committedOffset: input.toOffset },
        ),
    };
  }
  const batch = (runId: number, points: CommitBatchInput['points']): CommitBatchInput => ({
    runId,
    ownerAttempt: 'a',
    fromOffset: 0,
    toOffset: 1,
    points,
    progress: null,
    malformed: 0,
    oversized: 0,
  });

  it('finds only non-finite values of loss series', () => {
    expect(firstNonFiniteLoss([{ series: 'lr', step: 1, value: NaN }])).toBeNull();
    expect(firstNonFiniteLoss([{ series: 'loss', step: 1, value: 0.3 }])).toBeNull();
    expect(firstNonFiniteLoss([{ series: 'Val_Loss', step: 2, value: Infinity }])).toEqual({
      series: 'Val_Loss',
      step: 2,
      value: Infinity,
    });
  });

  it('reports once per run, after the batch is stored, and again after a failed report', async () => {
    const reports: NonFiniteLoss[] = [];
    let fail = true;
    const store = reportingNonFiniteLoss(fakeStore(), async (found) => {
      if (fail) {
        fail = false;
        throw new Error('Temporal is down');
      }
      reports.push(found);
    });
    await store.commitBatch(batch(1, [{ series: 'loss', step: 1, value: NaN }]));
    expect(reports).toEqual([]);
    await store.commitBatch(batch(1, [{ series: 'loss', step: 2, value: NaN }]));
    await store.commitBatch(batch(1, [{ series: 'loss', step: 3, value: NaN }]));
    await store.commitBatch(batch(2, [{ series: 'loss', step: 5, value: -Infinity }]));
    expect(reports).toEqual([
      { runId: 1, series: 'loss', step: 2, value: NaN },
      { runId: 2, series: 'loss', step: 5, value: -Infinity },
    ]);
  });

  it('does not report what was not stored', async () => {
    const reports: NonFiniteLoss[] = [];
    const store = reportingNonFiniteLoss(fakeStore(true), async (found) => void reports.push(found));
    await store.commitBatch(batch(1, [{ series: 'loss', step: 1, value: NaN }]));
    expect(reports).toEqual([]);
  });
});
