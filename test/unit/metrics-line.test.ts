import { describe, expect, it } from 'vitest';
import { MetricsLineReader, type MetricPoint, type PushResult } from '../../metrics/line-reader.js';

const enc = new TextEncoder();
const bytes = (s: string): Uint8Array => enc.encode(s);

/** Pushes `input` split into chunks of the given sizes (cycled) and merges the results. */
function feed(reader: MetricsLineReader, input: Uint8Array, sizes: number[]): PushResult {
  const total: PushResult = { points: [], progress: null, consumedBytes: 0, malformed: 0, oversized: 0 };
  let o = 0;
  let k = 0;
  while (o < input.length) {
    const size = sizes[k++ % sizes.length]!;
    const r = reader.push(input.subarray(o, Math.min(o + size, input.length)));
    o += size;
    total.points.push(...r.points);
    if (r.progress) total.progress = r.progress;
    total.consumedBytes += r.consumedBytes;
    total.malformed += r.malformed;
    total.oversized += r.oversized;
  }
  return total;
}

function one(line: string): PushResult {
  return new MetricsLineReader().push(bytes(`${line}\n`));
}

function seriesOf(points: MetricPoint[]): Record<string, number> {
  return Object.fromEntries(points.map((p) => [p.series, p.value]));
}

describe('metrics lines', () => {
  it('turns a line into points and progress', () => {
    const line = '{"step": 120, "total_steps": 5000, "epoch": 2, "lr": 0.0009, "loss": 0.41, "test_accuracy": 0.87}';
    const r = one(line);
    expect(r.points).toEqual([
      { series: 'lr', step: 120, value: 0.0009 },
      { series: 'loss', step: 120, value: 0.41 },
      { series: 'test_accuracy', step: 120, value: 0.87 },
    ]);
    expect(r.progress).toEqual({ step: 120, totalSteps: 5000, epoch: 2 });
    expect(r).toMatchObject({ malformed: 0, oversized: 0, consumedBytes: line.length + 1 });
  });

  it('reports the progress of the last valid line of the push', () => {
    const r = new MetricsLineReader().push(bytes('{"step":1,"total_steps":10}\n{"step":2,"loss":1}\nbroken\n'));
    expect(r.progress).toEqual({ step: 2 });
    expect(r.malformed).toBe(1);
    expect(new MetricsLineReader().push(bytes('nope\n')).progress).toBeNull();
  });

  it('keeps NaN and both infinities as Python writes them', () => {
    const r = one('{"step": 7, "loss": NaN, "grad": Infinity, "min": -Infinity, "lr": 1e999}');
    const v = seriesOf(r.points);
    expect(Number.isNaN(v.loss)).toBe(true);
    expect(v.grad).toBe(Number.POSITIVE_INFINITY);
    expect(v.min).toBe(Number.NEGATIVE_INFINITY);
    expect(v.lr).toBe(Number.POSITIVE_INFINITY);
    expect(r.malformed).toBe(0);
  });

  it('leaves strings that contain NaN or Infinity alone', () => {
    const r = one('{"step": 1, "note": "NaN Infinity -Infinity", "q": "say \\"NaN\\", then", "NaN": 2, "loss": 0.5}');
    expect(r.points).toEqual([
      { series: 'NaN', step: 1, value: 2 },
      { series: 'loss', step: 1, value: 0.5 },
    ]);
    expect(r.malformed).toBe(0);
  });

  it('ignores values that are not numbers without counting the line as malformed', () => {
    const r = one(
      '{"step": 3, "name": "run", "ok": true, "bad": false, "none": null, "cfg": {"a": [1, NaN, {"b": "x"}]}, ' +
        '"hist": [1, 2], "loss": 1.5}',
    );
    expect(r.points).toEqual([{ series: 'loss', step: 3, value: 1.5 }]);
    expect(r.malformed).toBe(0);
  });

  it('treats total_steps and epoch as progress, not series, and drops invalid ones', () => {
    const r = one('{"step": 3, "total_steps": "many", "epoch": -1, "loss": 1}');
    expect(r.points.map((p) => p.series)).toEqual(['loss']);
    expect(r.progress).toEqual({ step: 3 });
  });

  it('counts malformed JSON and carries on', () => {
    const lines = [
      'not json',
      '{"step": 1, "loss": }',
      '{"step": 1,}',
      '{"step": 1} trailing',
      "{'step': 1}",
      '{"step": 1, "loss": 0.5',
      '[1, 2]',
      '42',
      '{"step": 1, "loss": 01}',
      '{"step": 1, "loss": 1.}',
      '{"step": 1, "loss": .5}',
      '{"step": 1, "loss": +1}',
      '{"step": 1, "loss": 1e}',
      '{"step": 1, "loss": -}',
      '{"step": 1, "loss": nan}',
      '{"step": 1, "loss": "bad \\x escape"}',
      '{"step": 1, "loss": "tab\tinside"}',
      `{"step": 1, "deep": ${'['.repeat(1000)}${']'.repeat(1000)}}`,
      '{"step": 2, "loss": 0.25}',
    ];
    const r = new MetricsLineReader().push(bytes(lines.join('\n') + '\n'));
    expect(r.malformed).toBe(lines.length - 1);
    expect(r.points).toEqual([{ series: 'loss', step: 2, value: 0.25 }]);
  });

  it('requires step to be a finite integer ≥ 0', () => {
    for (const bad of [
      '{"loss": 1}',
      '{}',
      '{"step": -1}',
      '{"step": 1.5}',
      '{"step": "5"}',
      '{"step": NaN}',
      '{"step": Infinity}',
      '{"step": null}',
      '{"step": 1e300}',
    ]) {
      expect(one(bad).malformed, bad).toBe(1);
    }
    expect(one('{"step": 1e3, "loss": 1}').points).toEqual([{ series: 'loss', step: 1000, value: 1 }]);
    expect(one('{"step": 0}').progress).toEqual({ step: 0 });
  });

  it('takes the last value of a repeated key, as JSON.parse does', () => {
    expect(one('{"step": 1, "step": 2, "loss": 1}').progress).toEqual({ step: 2 });
    expect(one('{"step": 1, "step": -2}').malformed).toBe(1);
  });

  it('decodes escaped keys', () => {
    const r = one('{"st\\u0065p": 4, "lo\\"ss": 1, "\\u043f\\u043e\\u0442\\u0435\\u0440\\u0438": 2}');
    expect(r.progress).toEqual({ step: 4 });
    expect(r.points.map((p) => p.series)).toEqual(['lo"ss', 'потери']);
  });

  it('ignores series names that are empty or longer than 128 characters', () => {
    const long = 'x'.repeat(129);
    const justRight = 'y'.repeat(128);
    const emoji = '🔥'.repeat(128); // 128 characters, 256 UTF-16 units
    const r = one(`{"step": 1, "": 1, "${long}": 2, "${justRight}": 3, "${emoji}": 4, "${emoji}🔥": 5}`);
    expect(r.points.map((p) => p.value)).toEqual([3, 4]);
    expect(r.malformed).toBe(0);
  });

  it('parses numbers exactly as JSON.parse does', () => {
    const literals = [
      '0',
      '-0',
      '7',
      '-12',
      '0.1',
      '0.0009',
      '0.30000000000000004',
      '1e-7',
      '1E+2',
      '-12.5e-3',
      '123456789012345678',
      '9007199254740993',
      '1.7976931348623157e308',
      '5e-324',
      '2.2250738585072014e-308',
      '0.41234567761421204',
      '1e22',
      '1e23',
      '123.456e-30',
      '100000000000000000000000',
      '0.000000000000000000000001',
    ];
    for (let i = 0; i < 200; i++) literals.push(String(Math.random() * 10 ** Math.floor(Math.random() * 40 - 20)));
    const line = `{"step": 1, ${literals.map((l, i) => `"v${i}": ${l}`).join(', ')}}`;
    const r = one(line);
    expect(r.points.length).toBe(literals.length);
    r.points.forEach((p, i) => {
      expect(Object.is(p.value, JSON.parse(literals[i]!)), literals[i]).toBe(true);
    });
  });

  it('ignores blank lines and tolerates CRLF, spaces and a byte-order mark', () => {
    const r = new MetricsLineReader().push(
      bytes('\uFEFF{"step":1,"loss":1}\r\n\r\n   \n\t\n{ "step" : 2 , "loss" : 2 }\r\n\n'),
    );
    expect(r.points).toEqual([
      { series: 'loss', step: 1, value: 1 },
      { series: 'loss', step: 2, value: 2 },
    ]);
    expect(r.malformed).toBe(0);
  });
});

describe('metrics lines across pushes', () => {
  it('does not consume a trailing partial line, and completes it on the next push', () => {
    const reader = new MetricsLineReader();
    const first = reader.push(bytes('{"step":1,"loss":1}\n{"step":2,"lo'));
    expect(first.points).toEqual([{ series: 'loss', step: 1, value: 1 }]);
    expect(first.consumedBytes).toBe(20);
    expect(first.malformed).toBe(0);
    expect(reader.pendingBytes).toBe(13);

    const second = reader.push(bytes('ss":2}\n'));
    expect(second.points).toEqual([{ series: 'loss', step: 2, value: 2 }]);
    expect(second.consumedBytes).toBe(20);
    expect(reader.pendingBytes).toBe(0);
  });

  it('parses the last line without a newline only when told the file is finished', () => {
    const reader = new MetricsLineReader();
    expect(reader.push(bytes('{"step":9,"loss":3}')).points).toEqual([]);
    const end = reader.finish();
    expect(end.points).toEqual([{ series: 'loss', step: 9, value: 3 }]);
    expect(end.consumedBytes).toBe(19);
    expect(reader.pendingBytes).toBe(0);
  });

  it('splits a multibyte UTF-8 character across chunks without harm', () => {
    const input = bytes('{"step":5,"потеря":0.5,"准确率":0.9,"🔥":1}\n');
    const split = input.indexOf(0xd0, 12) + 1; // inside the two bytes of "п"
    const reader = new MetricsLineReader();
    const a = reader.push(input.subarray(0, split));
    const b = reader.push(input.subarray(split));
    expect(a.points).toEqual([]);
    expect(b.points.map((p) => p.series)).toEqual(['потеря', '准确率', '🔥']);
    expect(a.consumedBytes + b.consumedBytes).toBe(input.length);
  });

  it('gives the same result however the bytes are chunked', () => {
    const lines: string[] = [];
    for (let i = 0; i < 200; i++) {
      lines.push(
        i % 17 === 0
          ? 'garbage {'
          : `{"step": ${i}, "total_steps": 200, "потеря": ${i / 7}, "acc": ${i % 13 === 0 ? 'NaN' : 1 / (i + 1)}}`,
      );
    }
    const input = bytes(lines.join('\r\n') + '\r\n');
    const whole = feed(new MetricsLineReader(), input, [input.length]);
    for (const sizes of [[1], [2, 3], [7], [64, 1, 13], [4096]]) {
      const r = feed(new MetricsLineReader(), input, sizes);
      expect(r).toEqual(whole);
    }
    expect(whole.consumedBytes).toBe(input.length);
    expect(whole.malformed).toBe(12);
    expect(whole.points.length).toBe(188 * 2);
  });

  it('resumes from a committed offset with a new reader', () => {
    const input = bytes('{"step":1,"a":1}\n{"step":2,"a":2}\n{"step":3,"a":3}\n{"step":4,"a":4}\n');
    const reader = new MetricsLineReader();
    const r = reader.push(input.subarray(0, 40)); // two lines and part of a third
    expect(r.points.map((p) => p.step)).toEqual([1, 2]);
    const committed = r.consumedBytes;
    // The worker dies; a re-attached reader starts from the committed offset.
    const again = new MetricsLineReader().push(input.subarray(committed));
    expect(again.points.map((p) => p.step)).toEqual([3, 4]);
    expect(committed + again.consumedBytes).toBe(input.length);
  });
});

describe('oversized lines', () => {
  it('counts a 10 MB line spanning many chunks once and skips it', () => {
    const big = bytes(`{"step": 1, "blob": "${'x'.repeat(10 * 1024 * 1024)}"}\n`);
    const after = bytes('{"step": 2, "loss": 0.5}\n');
    const input = new Uint8Array(big.length + after.length + 10);
    input.set(bytes('{"step":0}'), 0);
    input.set(big, 10);
    input.set(after, 10 + big.length);
    // The first line has no newline of its own: it runs into the big one.
    const reader = new MetricsLineReader();
    const r = feed(reader, input, [64 * 1024]);
    expect(r.oversized).toBe(1);
    expect(r.malformed).toBe(0);
    expect(r.points).toEqual([{ series: 'loss', step: 2, value: 0.5 }]);
    expect(r.consumedBytes).toBe(input.length);
    expect(reader.pendingBytes).toBe(0);
  });

  it('keeps an unfinished oversized line pending until its newline arrives', () => {
    const reader = new MetricsLineReader({ maxLineBytes: 20 });
    const a = reader.push(bytes('{"step":1,"loss":1}\n{"step": 2, "lo'));
    expect(a).toMatchObject({ consumedBytes: 20, oversized: 0 });
    const b = reader.push(bytes('ss": 123456789'));
    expect(b).toMatchObject({ consumedBytes: 0, oversized: 1 });
    const unfinished = '{"step": 2, "lo'.length + 'ss": 123456789'.length;
    expect(reader.pendingBytes).toBe(unfinished);
    const c = reader.push(bytes('}\n{"step":3}\n'));
    expect(c).toMatchObject({ consumedBytes: unfinished + 2 + 11, oversized: 0, progress: { step: 3 } });
    expect(reader.pendingBytes).toBe(0);
  });

  it('applies the limit to lines inside one large chunk, to the byte', () => {
    const max = 32;
    const exact = `{"step":1,"loss":${'1'.repeat(max - 18)}}`; // exactly 32 bytes
    expect(bytes(exact).length).toBe(max);
    const over = `{"step":2,"loss":${'2'.repeat(max - 17)}}`; // 33 bytes
    const lines = [exact, over, '{"step":3,"loss":3}'];
    const r = new MetricsLineReader({ maxLineBytes: max }).push(bytes(lines.join('\n') + '\n'));
    expect(r.oversized).toBe(1);
    expect(r.points.map((p) => p.step)).toEqual([1, 3]);
    // The same bytes in large chunks mixed with oversized lines.
    const many = Array.from({ length: 50 }, (_, i) => (i % 5 === 0 ? over : exact)).join('\n') + '\n';
    const m = new MetricsLineReader({ maxLineBytes: max }).push(bytes(many));
    expect(m.oversized).toBe(10);
    expect(m.points.length).toBe(40);
  });

  it('counts bytes, not characters, against the limit', () => {
    const line = '{"step":1,"ж":1}'; // 16 characters, 17 bytes
    expect(new MetricsLineReader({ maxLineBytes: 16 }).push(bytes(`${line}\n`)).oversized).toBe(1);
    expect(new MetricsLineReader({ maxLineBytes: 17 }).push(bytes(`${line}\n`)).points.length).toBe(1);
  });
});

describe('member names PostgreSQL text cannot hold', () => {
  it('make the whole line malformed: its other points and its progress are not kept', () => {
    for (const name of ['lo\\u0000ss', '\\u0000', 'x\\ud800', '\\udc00y', 'a\\ud800\\ud800']) {
      const r = one(`{"step":7,"total_steps":10,"loss":0.5,"${name}":1}`);
      expect(r.malformed, name).toBe(1);
      expect(r.points, name).toEqual([]);
      expect(r.progress, name).toBeNull();
    }
    // Even when the value would not have been a series.
    expect(one('{"step":7,"loss":0.5,"no\\u0000te":"text"}').malformed).toBe(1);
  });

  it('keeps escaped names PostgreSQL holds, surrogate pairs included, and the lines around a bad one', () => {
    const r = new MetricsLineReader().push(
      bytes(
        '{"step":1,"lo\\u0073s":0.9,"\\ud83d\\ude00":2}\n{"step":2,"bad\\u0000":1,"loss":0.8}\n{"step":3,"loss":0.7}\n',
      ),
    );
    expect(r.malformed).toBe(1);
    expect(r.points).toEqual([
      { series: 'loss', step: 1, value: 0.9 },
      { series: '😀', step: 1, value: 2 },
      { series: 'loss', step: 3, value: 0.7 },
    ]);
  });
});
