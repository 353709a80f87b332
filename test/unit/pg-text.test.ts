// What PostgreSQL text can hold (domain/pg-text.ts) and which database errors repeat on
// every attempt (metrics/data-errors.ts): the two guards that keep a trainer's odd
// bytes from stalling its run.
import { describe, expect, it } from 'vitest';
import { dataErrorOf } from '../../metrics/data-errors.js';
import { InvalidBatchError, checkPoints } from '../../metrics/batch.js';
import { isPgText, pgText } from '../../domain/pg-text.js';

describe('pgText', () => {
  it('replaces NUL and unpaired surrogates with U+FFFD and keeps everything else as it is', () => {
    expect(pgText('a\u0000b\u0000')).toBe('a\uFFFDb\uFFFD');
    expect(pgText('x\uD800y')).toBe('x\uFFFDy');
    expect(pgText('x\uDC00y')).toBe('x\uFFFDy');
    expect(pgText('\uDC00\uD800')).toBe('\uFFFD\uFFFD'); // a low before a high is two lone halves
    expect(pgText('end\uD83D')).toBe('end\uFFFD');
    const fine = 'loss 😀 日本語 \u0001\t\n é';
    expect(pgText(fine)).toBe(fine);
    expect(pgText('')).toBe('');
  });

  it('tells storable text from text PostgreSQL refuses', () => {
    expect(isPgText('test_accuracy')).toBe(true);
    expect(isPgText('😀')).toBe(true);
    expect(isPgText('a\u0000')).toBe(false);
    expect(isPgText('\uD800')).toBe(false);
    expect(isPgText('\uDFFF')).toBe(false);
  });
});

describe('the data-error classifier', () => {
  /** An error shaped like postgres.js's PostgresError. */
  function postgresError(code: string, message: string): Error {
    return Object.assign(new Error(message), { name: 'PostgresError', code, severity: 'ERROR' });
  }

  it('finds a data exception (class 22) or a program limit (class 54) in the error or its causes', () => {
    expect(dataErrorOf(postgresError('22021', 'invalid byte sequence for encoding "UTF8": 0x00'))).toEqual({
      code: '22021',
      message: 'invalid byte sequence for encoding "UTF8": 0x00',
    });
    expect(dataErrorOf(postgresError('22P05', 'unsupported Unicode escape sequence'))?.code).toBe('22P05');
    expect(dataErrorOf(postgresError('54000', 'index row size 3000 exceeds maximum 2712'))?.code).toBe('54000');
    // drizzle wraps the driver's error, prefixing the whole query and its parameters: the cause's message is kept.
    const wrapped = new Error('Failed query: update runs set stdout_tail = $1\nparams: a\u0000b', {
      cause: postgresError('22021', 'invalid byte sequence'),
    });
    expect(dataErrorOf(wrapped)).toEqual({ code: '22021', message: 'invalid byte sequence' });
  });

  it('leaves errors that may pass on retry alone', () => {
    expect(dataErrorOf(postgresError('40001', 'could not serialize access'))).toBeNull();
    expect(dataErrorOf(postgresError('57P01', 'terminating connection due to administrator command'))).toBeNull();
    expect(dataErrorOf(postgresError('08006', 'connection failure'))).toBeNull();
    expect(dataErrorOf(postgresError('23505', 'duplicate key value'))).toBeNull();
    expect(dataErrorOf(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }))).toBeNull();
    expect(dataErrorOf(Object.assign(new Error('write CONNECTION_CLOSED'), { code: 'CONNECTION_CLOSED' }))).toBeNull();
    expect(dataErrorOf(new Error('plain'))).toBeNull();
    expect(dataErrorOf('not an error')).toBeNull();
    const loop: Error & { cause?: unknown } = new Error('cause loop');
    loop.cause = loop;
    expect(dataErrorOf(loop)).toBeNull();
  });

  it('counts a batch the reader should have refused as deterministic too', () => {
    let thrown: unknown;
    try {
      checkPoints([{ series: 'bad\u0000name', step: 1, value: 1 }]);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(InvalidBatchError);
    expect(dataErrorOf(thrown)?.code).toBe('invalid-batch');
    expect(() => checkPoints([{ series: 'x\uD800', step: 1, value: 1 }])).toThrow(InvalidBatchError);
    expect(() => checkPoints([{ series: 'loss', step: 1, value: 1 }])).not.toThrow();
  });
});
