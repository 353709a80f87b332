// Min/max-preserving downsampling of a metric series for the monitoring chart
// (docs/design.md §6, §8 "chart"): at most maxPoints points, and never at the cost
// of a spike. A diverging loss shows up as a huge value, NaN or ±Infinity;
// averaging or plain decimation would hide exactly that.
//
// Points are bucketed by index, not by step range: trainers report at a
// near-constant step interval, and index buckets are never empty, so the whole
// budget is spent on data. Each bucket keeps its finite minimum and maximum
// and the first NaN, +Infinity and -Infinity it holds, in step order; the first
// and last points of the series are always kept. Buckets start at two points
// each; when non-finite values make the picks overflow the budget, the pass is
// redone with proportionally fewer buckets (rare: series are mostly finite).

export type SeriesPoint = [step: number, value: number];

/**
 * The indices (ascending) of the points to keep out of `values`, at most
 * `maxPoints` of them (an integer ≥ 2).
 */
export function downsampleIndices(values: ArrayLike<number>, maxPoints: number): number[] {
  checkMaxPoints(maxPoints);
  const n = values.length;
  if (n <= maxPoints) {
    const all = new Array<number>(n);
    for (let i = 0; i < n; i++) all[i] = i;
    return all;
  }
  const budget = maxPoints - 2; // first and last are always kept
  const interior = n - 2;
  const out: number[] = [0];
  if (budget > 0) {
    let buckets = Math.min(interior, Math.max(1, Math.floor(budget / 2)));
    // With at most five picks per bucket this many buckets always fit.
    const safe = Math.max(1, Math.floor(budget / 5));
    for (let pass = 0; ; pass++) {
      const picks = pickBuckets(values, 1, interior, buckets);
      if (picks.length <= budget) {
        for (let i = 0; i < picks.length; i++) out.push(picks[i]!);
        break;
      }
      if (buckets === 1) {
        // A budget of one to four points and more kinds of values than that.
        for (const i of trim(values, picks, budget)) out.push(i);
        break;
      }
      // Fewer buckets, scaled by how far over budget this pass went; after two
      // tries, the count that cannot overflow. At most three passes in all.
      const scaled = Math.min(buckets - 1, Math.floor((buckets * budget) / picks.length));
      buckets = pass >= 1 ? safe : Math.max(safe, scaled);
    }
  }
  out.push(n - 1);
  return out;
}

/**
 * At most `maxPoints` of `points` (sorted by step), spikes and non-finite
 * values kept. The kept tuples are the input's own objects, not copies.
 */
export function downsample(points: readonly SeriesPoint[], maxPoints: number): SeriesPoint[] {
  checkMaxPoints(maxPoints);
  const n = points.length;
  if (n <= maxPoints) return points.slice();
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = points[i]![1];
  const keep = downsampleIndices(values, maxPoints);
  const out = new Array<SeriesPoint>(keep.length);
  for (let k = 0; k < keep.length; k++) out[k] = points[keep[k]!]!;
  return out;
}

function checkMaxPoints(maxPoints: number): void {
  if (!Number.isInteger(maxPoints) || maxPoints < 2) {
    throw new RangeError(`maxPoints must be an integer ≥ 2, got ${maxPoints}`);
  }
}

// One pass over values[start, start + count) in `buckets` equal index ranges.
function pickBuckets(values: ArrayLike<number>, start: number, count: number, buckets: number): number[] {
  const picks: number[] = [];
  const bucket = [0, 0, 0, 0, 0];
  for (let b = 0; b < buckets; b++) {
    const from = start + Math.floor((b * count) / buckets);
    const to = start + Math.floor(((b + 1) * count) / buckets);
    let minV = Number.POSITIVE_INFINITY;
    let maxV = Number.NEGATIVE_INFINITY;
    let iMin = -1;
    let iMax = -1;
    let iNaN = -1;
    let iPos = -1;
    let iNeg = -1;
    for (let i = from; i < to; i++) {
      const x = values[i]!;
      if (x - x === 0) {
        // finite
        if (x < minV) {
          minV = x;
          iMin = i;
        }
        if (x > maxV) {
          maxV = x;
          iMax = i;
        }
      } else if (x !== x) {
        if (iNaN < 0) iNaN = i;
      } else if (x > 0) {
        if (iPos < 0) iPos = i;
      } else if (iNeg < 0) {
        iNeg = i;
      }
    }
    let k = 0;
    if (iMin >= 0) bucket[k++] = iMin;
    if (iMax >= 0 && iMax !== iMin) bucket[k++] = iMax;
    if (iNaN >= 0) bucket[k++] = iNaN;
    if (iPos >= 0) bucket[k++] = iPos;
    if (iNeg >= 0) bucket[k++] = iNeg;
    // Insertion sort of at most five indices keeps step order.
    for (let a = 1; a < k; a++) {
      const v = bucket[a]!;
      let c = a - 1;
      while (c >= 0 && bucket[c]! > v) {
        bucket[c + 1] = bucket[c]!;
        c--;
      }
      bucket[c + 1] = v;
    }
    for (let a = 0; a < k; a++) picks.push(bucket[a]!);
  }
  return picks;
}

// With too small a budget for everything one bucket holds: non-finite values
// first (they are what the chart exists to show), then the maximum, then the minimum.
function trim(values: ArrayLike<number>, picks: number[], budget: number): number[] {
  const rank = (i: number): number => {
    const x = values[i]!;
    if (x !== x) return 0;
    if (x === Number.POSITIVE_INFINITY) return 1;
    if (x === Number.NEGATIVE_INFINITY) return 2;
    return 3;
  };
  const finite = picks.filter((i) => rank(i) === 3);
  // Among the (at most two) finite picks, the larger value is the maximum.
  finite.sort((a, b) => values[b]! - values[a]!);
  const ordered = [...picks.filter((i) => rank(i) < 3).sort((a, b) => rank(a) - rank(b)), ...finite];
  return ordered.slice(0, budget).sort((a, b) => a - b);
}
