// Metrics lines in the trainer protocol: one JSON object per line, appended
// with a single write. Non-finite numbers are written the way Python's
// json.dumps writes them (NaN, Infinity, -Infinity) — JSON.stringify would
// turn them into null and hide a diverging loss.

import { appendFileSync } from 'node:fs';

export type MetricsPoint = Record<string, number>;

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return 'Infinity';
  if (value === -Infinity) return '-Infinity';
  return JSON.stringify(value);
}

/** One newline-terminated line; keys keep their insertion order. */
export function formatMetricsLine(point: MetricsPoint): string {
  const fields = Object.entries(point).map(([key, value]) => `${JSON.stringify(key)}:${formatNumber(value)}`);
  return `{${fields.join(',')}}\n`;
}

export class MetricsWriter {
  constructor(readonly file: string) {}

  /** Appends the points in one write (O_APPEND), so a reader never sees half a batch of lines. */
  write(...points: MetricsPoint[]): void {
    if (points.length === 0) return;
    appendFileSync(this.file, points.map(formatMetricsLine).join(''));
  }
}
