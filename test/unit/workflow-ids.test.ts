import { describe, expect, it } from 'vitest';
import { processKeyOf, processWorkflowPrefix } from '../../workflows/messages.js';

describe('processKeyOf', () => {
  it('reads the key from a workflow id of the current form', () => {
    expect(processKeyOf(`${processWorkflowPrefix('0123456789ab')}42-fedcba987654`)).toBe('fedcba987654');
  });

  it('has none for ids from before installation ids, or anything else', () => {
    for (const id of [
      'training-process-42',
      `${processWorkflowPrefix('0123456789ab')}42`,
      `${processWorkflowPrefix('0123456789ab')}42-FEDCBA987654`,
      `${processWorkflowPrefix('0123456789ab')}42-fedcba98765`,
      `${processWorkflowPrefix('0123456789ab')}x-fedcba987654`,
      'trainyard-0123456789ab-probe-machine-1-fedcba987654',
    ])
      expect(processKeyOf(id), id).toBeNull();
  });
});
