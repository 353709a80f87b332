import { describe, expect, it } from 'vitest';
import { DatabaseUnreachableError } from '../../db/client.js';
import { EXPECTED_ERROR, FAILURE, isExpectedError } from '../../domain/failures.js';
import { ConfigError } from '../../lib/config.js';
import { KeyboxError } from '../../lib/keybox.js';
import { TemporalUnreachableError } from '../../lib/temporal.js';
import { TemporalCliError } from '../../lib/temporal-cli.js';
import { DevServerError } from '../../lib/temporal-dev-server.js';
import { ServiceError } from '../../services/errors.js';

describe('the failure catalogue', () => {
  it('keeps the ApplicationFailure types stored in workflow histories', () => {
    expect(FAILURE).toEqual({
      notAllowed: 'NotAllowed',
      notFound: 'NotFound',
      runFinished: 'RunFinished',
      machineLost: 'MachineLost',
      launchFailed: 'LaunchFailed',
      hostKeyMismatch: 'HostKeyMismatch',
      hostKeyUnreadable: 'HostKeyUnreadable',
      machineRemoved: 'MachineRemoved',
      fenced: 'Fenced',
      trainerOutputRejected: 'TrainerOutputRejected',
      stalled: 'Stalled',
      notOwner: 'NotOwner',
    });
  });

  it('knows the start-up errors as expected, by the name their classes take from it', () => {
    const errors = [
      new ConfigError('x'),
      new DatabaseUnreachableError('x'),
      new TemporalUnreachableError('x'),
      new DevServerError('x'),
      new TemporalCliError('x'),
      new KeyboxError('x'),
      new ServiceError('invalid', { en: 'x', ru: 'x' }),
    ];
    for (const error of errors) expect(isExpectedError(error), error.name).toBe(true);
    expect(new Set(errors.map((e) => e.name)).size).toBe(errors.length);
    expect(Object.values(EXPECTED_ERROR)).toEqual(expect.arrayContaining(errors.map((e) => e.name)));
  });

  it('treats anything else as a bug, built-in errors whose names end in "Error" included', () => {
    for (const error of [
      new Error('x'),
      new TypeError('x'),
      new RangeError('x'),
      new SyntaxError('x'),
      'a string',
      null,
    ]) {
      expect(isExpectedError(error)).toBe(false);
    }
    class SomeOtherError extends Error {
      override name = 'SomeOtherError';
    }
    expect(isExpectedError(new SomeOtherError('x'))).toBe(false);
  });
});
