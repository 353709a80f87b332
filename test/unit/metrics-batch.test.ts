import { describe, expect, it } from 'vitest';
import {
  checkPoints,
  floatLiteral,
  groupBySeries,
  splitByStoredMax,
  textArray,
  toColumns,
} from '../../metrics/batch.js';

const ids = new Map([
  ['loss', 1],
  ['lr', 2],
]);

describe('groupBySeries', () => {
  it('groups points by series, keeping step order', () => {
    const groups = groupBySeries(
      [
        { series: 'loss', step: 1, value: 0.5 },
        { series: 'lr', step: 1, value: 0.1 },
        { series: 'loss', step: 2, value: 0.4 },
      ],
      ids,
    );
    expect(groups).toMatchObject([
      { seriesId: 1, steps: [1, 2], values: [0.5, 0.4] },
      { seriesId: 2, steps: [1], values: [0.1] },
    ]);
  });

  it('keeps the last value of a step written twice and sorts steps that went back', () => {
    const groups = groupBySeries(
      [
        { series: 'loss', step: 5, value: 1 },
        { series: 'loss', step: 6, value: 2 },
        { series: 'loss', step: 5, value: 3 },
        { series: 'loss', step: 4, value: 4 },
      ],
      ids,
    );
    expect(groups).toEqual([{ seriesId: 1, steps: [4, 5, 6], values: [4, 3, 2] }]);
  });

  it('refuses a point of a series without an id', () => {
    expect(() => groupBySeries([{ series: 'acc', step: 1, value: 1 }], ids)).toThrow(/acc/);
  });
});

describe('splitByStoredMax', () => {
  it('appends steps past the stored maximum and rewrites the rest', () => {
    const groups = [
      { seriesId: 1, steps: [8, 9, 10, 11], values: [1, 2, 3, 4] },
      { seriesId: 2, steps: [1, 2], values: [5, 6] },
      { seriesId: 3, steps: [3], values: [7] },
    ];
    const { append, rewrite } = splitByStoredMax(
      groups,
      new Map([
        [1, 9],
        [3, 100],
      ]),
    );
    expect(rewrite).toEqual([
      { seriesId: 1, steps: [8, 9], values: [1, 2] },
      { seriesId: 3, steps: [3], values: [7] },
    ]);
    expect(append).toEqual([
      { seriesId: 1, steps: [10, 11], values: [3, 4] },
      { seriesId: 2, steps: [1, 2], values: [5, 6] },
    ]);
  });
});

describe('literals', () => {
  it('spells non-finite values and -0 the way PostgreSQL reads them', () => {
    expect([Number.NaN, Infinity, -Infinity, -0, 0, 1e-7, 0.1 + 0.2].map(floatLiteral)).toEqual([
      'NaN',
      'Infinity',
      '-Infinity',
      '-0',
      '0',
      '1e-7',
      '0.30000000000000004',
    ]);
    expect(toColumns([{ seriesId: 7, steps: [1, 2], values: [Number.NaN, -Infinity] }])).toEqual({
      count: 2,
      seriesIds: '{7,7}',
      steps: '{1,2}',
      values: '{NaN,-Infinity}',
    });
  });

  it('quotes every text element', () => {
    expect(textArray(['a,b', 'q"d', 'b\\s', 'NULL', ''])).toBe('{"a,b","q\\"d","b\\\\s","NULL",""}');
  });

  it('refuses steps that are not safe integers', () => {
    expect(() => checkPoints([{ series: 'loss', step: 1.5, value: 1 }])).toThrow(TypeError);
    expect(() => checkPoints([{ series: 'loss', step: 2 ** 53, value: 1 }])).toThrow(TypeError);
  });
});
