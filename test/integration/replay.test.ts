// Replays recorded histories of real training-process workflows against today's code:
// a change that would break a running workflow (non-determinism) fails here. The rule and
// when to record (`npm run record-history`, with the code of the release before a
// workflow change) are in docs/upgrades.md.
import fs from 'node:fs';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { workflowBundle } from '../support/stack.js';

const DIR = path.resolve('test/fixtures/histories');
const files = fs.existsSync(DIR) ? fs.readdirSync(DIR).filter((f) => f.endsWith('.json')) : [];

describe('recorded workflow histories', () => {
  it('exist: the replay guard has something to replay', () => {
    expect(files.length).toBeGreaterThanOrEqual(5);
  });

  it('all replay without non-determinism against the current workflow code', async () => {
    const histories = files.map((file) => {
      const { workflowId, history } = JSON.parse(fs.readFileSync(path.join(DIR, file), 'utf8')) as {
        workflowId: string;
        history: unknown;
      };
      return { workflowId, history: historyFromJSON(history) };
    });
    const results = Worker.runReplayHistories(
      { workflowBundle: await workflowBundle(), replayName: 'trainyard-replay' },
      histories,
    );
    const failures: string[] = [];
    let replayed = 0;
    for await (const result of results) {
      replayed += 1;
      if (result.error) failures.push(`${result.workflowId}: ${result.error.message}`);
    }
    expect(failures).toEqual([]);
    expect(replayed).toBe(histories.length);
  });
});
