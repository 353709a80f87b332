// Metric values on their way out as JSON. JSON cannot spell NaN or ±Infinity, and a
// diverging loss is exactly what an operator must see: non-finite values travel as the
// strings "NaN", "Infinity" and "-Infinity" (the chart's data, JSON-lines exports).
import type { MetricPoint } from './query.js';

export type NonFiniteName = 'NaN' | 'Infinity' | '-Infinity';
export type EncodedValue = number | NonFiniteName;
export type EncodedPoint = [step: number, value: EncodedValue];

/** How a non-finite value is spelled (a finite one is not asked about). */
export function nonFiniteName(value: number): NonFiniteName {
  return Number.isNaN(value) ? 'NaN' : value > 0 ? 'Infinity' : '-Infinity';
}

function encodeValue(value: number): EncodedValue {
  return Number.isFinite(value) ? value : nonFiniteName(value);
}

export function encodeSeries(points: readonly MetricPoint[]): EncodedPoint[] {
  return points.map(([step, value]) => [step, encodeValue(value)]);
}
