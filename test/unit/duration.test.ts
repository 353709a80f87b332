import { describe, expect, it } from 'vitest';
import { formatDuration, formatEta } from '../../domain/duration.js';

describe('formatEta', () => {
  const cases: Array<[number, string, string]> = [
    [0, '~0 s', '~0 с'],
    [45, '~45 s', '~45 с'],
    [59.4, '~59 s', '~59 с'],
    [59.6, '~1 min', '~1 мин'],
    [60, '~1 min', '~1 мин'],
    [200, '~3 min 20 s', '~3 мин 20 с'],
    [3599.7, '~1 h', '~1 ч'],
    [2 * 3600 + 14 * 60, '~2 h 14 min', '~2 ч 14 мин'],
    [2 * 3600 + 13 * 60 + 59, '~2 h 14 min', '~2 ч 14 мин'],
    [5 * 3600 + 20, '~5 h', '~5 ч'],
    [86399, '~1 d', '~1 д'],
    [3 * 86400 + 4 * 3600, '~3 d 4 h', '~3 д 4 ч'],
    [3 * 86400 + 4 * 3600 + 29 * 60, '~3 d 4 h', '~3 д 4 ч'],
    [400 * 86400, '~400 d', '~400 д'],
  ];
  for (const [seconds, en, ru] of cases) {
    it(`formats ${seconds} s as "${en}" / "${ru}"`, () => {
      expect(formatEta(seconds, 'en')).toBe(en);
      expect(formatEta(seconds, 'ru')).toBe(ru);
    });
  }

  it('shows a dash when there is no estimate', () => {
    expect(formatEta(null, 'en')).toBe('—');
    expect(formatEta(null, 'ru')).toBe('—');
    expect(formatEta(Number.NaN, 'en')).toBe('—');
    expect(formatEta(Number.POSITIVE_INFINITY, 'ru')).toBe('—');
  });

  it('reads a negative estimate as zero', () => {
    expect(formatEta(-5, 'en')).toBe('~0 s');
  });
});

describe('formatDuration', () => {
  it('has no tilde', () => {
    expect(formatDuration(2 * 3600 + 14 * 60, 'en')).toBe('2 h 14 min');
    expect(formatDuration(45, 'ru')).toBe('45 с');
    expect(formatDuration(3 * 86400 + 4 * 3600, 'ru')).toBe('3 д 4 ч');
  });

  it('shows a dash for a broken value', () => {
    expect(formatDuration(Number.NaN, 'en')).toBe('—');
  });
});
