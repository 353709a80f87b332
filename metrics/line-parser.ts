// One line of the metrics file, parsed in place.
//
// Its own small JSON parser rather than JSON.parse, because Python's
// json.dumps writes the bare tokens NaN, Infinity and -Infinity, which
// JSON.parse rejects, and rewriting them textually would risk altering string
// values that happen to contain those words. Parsing in place also avoids
// building an object per line.

import { isPgText } from '../domain/pg-text.js';

const MAX_SERIES_NAME_LENGTH = 128;

export const BLANK = 0;
export const OK = 1;
export const BAD = 2;
export type ParseResult = typeof BLANK | typeof OK | typeof BAD;

// Kinds of the last value parsed.
const NUMBER = 1;
const OTHER = 2;

// Nesting deeper than this in an ignored value makes the line malformed
// rather than risking the stack; no metrics line nests like that.
const MAX_DEPTH = 256;

/**
 * One line of JSON, top level an object; values may be any JSON plus NaN,
 * Infinity and -Infinity. Keeps the numeric top-level members; strict about
 * syntax so that a line the trainer wrote only half of is malformed, not
 * half-read.
 */
export class LineParser {
  // Results of the last OK line.
  step = 0;
  totalSteps: number | undefined;
  epoch: number | undefined;
  names: string[] = [];
  values: number[] = [];
  count = 0;

  private s = '';
  private i = 0;
  private end = 0;
  private kind = OTHER;
  private num = 0;
  // The keys of earlier lines by position: a trainer writes the same keys in
  // the same order every line, so reusing the strings saves an allocation per
  // key and hands the caller one shared string per series.
  private readonly keyCache: string[] = [];

  parse(s: string, start: number, end: number): ParseResult {
    this.s = s;
    this.i = start;
    this.end = end;
    this.count = 0;
    this.totalSteps = undefined;
    this.epoch = undefined;

    this.ws();
    if (this.i < end && s.charCodeAt(this.i) === 0xfeff) {
      // A byte-order mark some editors put at the start of a file.
      this.i++;
      this.ws();
    }
    if (this.i >= end) return BLANK;
    if (s.charCodeAt(this.i) !== 0x7b /* { */) return BAD;
    this.i++;
    this.ws();

    let step = Number.NaN;
    if (this.peek() === 0x7d /* } */) {
      this.i++;
    } else {
      for (let slot = 0; ; slot++) {
        if (this.peek() !== 0x22 /* " */) return BAD;
        const key = this.key(slot);
        if (key === null) return BAD;
        this.ws();
        if (this.peek() !== 0x3a /* : */) return BAD;
        this.i++;
        this.ws();
        if (!this.value(0)) return BAD;
        const isNumber = this.kind === NUMBER;
        const num = this.num;
        // A key given twice counts as its last value, as in JSON.parse.
        if (key === 'step') {
          step = isNumber ? num : Number.NaN;
        } else if (key === 'total_steps') {
          this.totalSteps = isNumber && num > 0 && num < Number.POSITIVE_INFINITY ? num : undefined;
        } else if (key === 'epoch') {
          this.epoch = isNumber && num >= 0 && num < Number.POSITIVE_INFINITY ? num : undefined;
        } else if (isNumber && validSeriesName(key)) {
          this.names[this.count] = key;
          this.values[this.count] = num;
          this.count++;
        }
        this.ws();
        const c = this.peek();
        if (c === 0x2c /* , */) {
          this.i++;
          this.ws();
          continue;
        }
        if (c === 0x7d /* } */) {
          this.i++;
          break;
        }
        return BAD;
      }
    }
    this.ws();
    if (this.i !== end) return BAD;
    if (!(Number.isSafeInteger(step) && step >= 0)) return BAD;
    this.step = step;
    return OK;
  }

  private peek(): number {
    return this.i < this.end ? this.s.charCodeAt(this.i) : -1;
  }

  private ws(): void {
    const s = this.s;
    let i = this.i;
    while (i < this.end) {
      const c = s.charCodeAt(i);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0d && c !== 0x0a) break;
      i++;
    }
    this.i = i;
  }

  // A member name at this.i (its opening quote): its value, or null if invalid.
  private key(slot: number): string | null {
    const s = this.s;
    const from = this.i + 1;
    let i = from;
    while (i < this.end) {
      const c = s.charCodeAt(i);
      if (c === 0x22) {
        this.i = i + 1;
        const cached = slot < 64 ? this.keyCache[slot] : undefined;
        if (cached !== undefined && cached.length === i - from && s.startsWith(cached, from)) return cached;
        const key = s.slice(from, i);
        if (slot < 64) this.keyCache[slot] = key;
        return key;
      }
      if (c === 0x5c /* \ */) {
        // Rare in keys: validate the rest, then let JSON.parse unescape it. Only an escape
        // can spell U+0000 or an unpaired surrogate (raw control characters are refused
        // below, and the UTF-8 decoder never yields a surrogate): PostgreSQL text holds
        // neither, so such a name makes the line malformed, like any other bad line.
        if (!this.skipString()) return null;
        try {
          const key = JSON.parse(s.slice(from - 1, this.i)) as string;
          return isPgText(key) ? key : null;
        } catch {
          return null;
        }
      }
      if (c < 0x20) return null;
      i++;
    }
    return null;
  }

  // Skips a string at this.i (its opening quote), checking its escapes.
  private skipString(): boolean {
    const s = this.s;
    let i = this.i + 1;
    while (i < this.end) {
      const c = s.charCodeAt(i);
      if (c === 0x22) {
        this.i = i + 1;
        return true;
      }
      if (c === 0x5c) {
        const e = i + 1 < this.end ? s.charCodeAt(i + 1) : -1;
        if (e === 0x75 /* u */) {
          if (i + 6 > this.end) return false;
          for (let k = i + 2; k < i + 6; k++) if (!isHex(s.charCodeAt(k))) return false;
          i += 6;
          continue;
        }
        // " \ / b f n r t
        if (
          e !== 0x22 &&
          e !== 0x5c &&
          e !== 0x2f &&
          e !== 0x62 &&
          e !== 0x66 &&
          e !== 0x6e &&
          e !== 0x72 &&
          e !== 0x74
        ) {
          return false;
        }
        i += 2;
        continue;
      }
      if (c < 0x20) return false;
      i++;
    }
    return false;
  }

  // Any JSON value (plus NaN and ±Infinity); sets kind and num.
  private value(depth: number): boolean {
    const c = this.peek();
    this.kind = OTHER;
    switch (c) {
      case 0x22:
        return this.skipString();
      case 0x2d /* - */:
        if (this.i + 1 < this.end && this.s.charCodeAt(this.i + 1) === 0x49 /* I */) {
          this.i++;
          return this.literal('Infinity', Number.NEGATIVE_INFINITY);
        }
        return this.number();
      case 0x4e /* N */:
        return this.literal('NaN', Number.NaN);
      case 0x49 /* I */:
        return this.literal('Infinity', Number.POSITIVE_INFINITY);
      case 0x74 /* t */:
        return this.literal('true', null);
      case 0x66 /* f */:
        return this.literal('false', null);
      case 0x6e /* n */:
        return this.literal('null', null);
      case 0x7b /* { */:
        return depth < MAX_DEPTH && this.object(depth + 1);
      case 0x5b /* [ */:
        return depth < MAX_DEPTH && this.array(depth + 1);
      default:
        return c >= 0x30 && c <= 0x39 && this.number();
    }
  }

  // A bare word; a number for NaN and the infinities, null for the others.
  private literal(word: string, value: number | null): boolean {
    if (this.i + word.length > this.end || !this.s.startsWith(word, this.i)) return false;
    this.i += word.length;
    if (value !== null) {
      this.kind = NUMBER;
      this.num = value;
    }
    return true;
  }

  // The strict JSON number grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
  // Up to 15 significant digits and a power of ten within ±22, the value is
  // one exact multiplication or division away, hence correctly rounded (the
  // classic fast path); anything longer goes to Number().
  private number(): boolean {
    const s = this.s;
    const end = this.end;
    const from = this.i;
    let i = from;
    let negative = false;
    if (s.charCodeAt(i) === 0x2d) {
      negative = true;
      i++;
    }
    let mantissa = 0;
    let digits = 0;
    let scale = 0;
    let c = i < end ? s.charCodeAt(i) : -1;
    if (c === 0x30) {
      i++;
      c = i < end ? s.charCodeAt(i) : -1;
    } else if (c >= 0x31 && c <= 0x39) {
      do {
        mantissa = mantissa * 10 + (c - 0x30);
        digits++;
        i++;
        c = i < end ? s.charCodeAt(i) : -1;
      } while (c >= 0x30 && c <= 0x39);
    } else {
      return false;
    }
    if (c === 0x2e /* . */) {
      i++;
      c = i < end ? s.charCodeAt(i) : -1;
      if (!isDigit(c)) return false;
      do {
        // Leading zeros of a fraction only move the point.
        if (mantissa !== 0 || c !== 0x30) {
          mantissa = mantissa * 10 + (c - 0x30);
          digits++;
        }
        scale--;
        i++;
        c = i < end ? s.charCodeAt(i) : -1;
      } while (c >= 0x30 && c <= 0x39);
    }
    if (c === 0x65 || c === 0x45 /* e E */) {
      i++;
      c = i < end ? s.charCodeAt(i) : -1;
      let expNegative = false;
      if (c === 0x2b || c === 0x2d) {
        expNegative = c === 0x2d;
        i++;
        c = i < end ? s.charCodeAt(i) : -1;
      }
      if (!isDigit(c)) return false;
      let exp = 0;
      do {
        if (exp < 100_000) exp = exp * 10 + (c - 0x30);
        i++;
        c = i < end ? s.charCodeAt(i) : -1;
      } while (c >= 0x30 && c <= 0x39);
      scale += expNegative ? -exp : exp;
    }
    this.i = i;
    this.kind = NUMBER;
    if (digits <= 15 && scale >= -22 && scale <= 22) {
      const v = scale < 0 ? mantissa / POW10[-scale]! : mantissa * POW10[scale]!;
      this.num = negative ? -v : v;
    } else {
      this.num = Number(s.slice(from, i));
    }
    return true;
  }

  private object(depth: number): boolean {
    this.i++;
    this.ws();
    if (this.peek() === 0x7d) {
      this.i++;
      return true;
    }
    for (;;) {
      if (this.peek() !== 0x22 || !this.skipString()) return false;
      this.ws();
      if (this.peek() !== 0x3a) return false;
      this.i++;
      this.ws();
      if (!this.value(depth)) return false;
      this.ws();
      const c = this.peek();
      this.i++;
      if (c === 0x7d) break;
      if (c !== 0x2c) return false;
      this.ws();
    }
    this.kind = OTHER;
    return true;
  }

  private array(depth: number): boolean {
    this.i++;
    this.ws();
    if (this.peek() === 0x5d /* ] */) {
      this.i++;
      return true;
    }
    for (;;) {
      if (!this.value(depth)) return false;
      this.ws();
      const c = this.peek();
      this.i++;
      if (c === 0x5d) break;
      if (c !== 0x2c) return false;
      this.ws();
    }
    this.kind = OTHER;
    return true;
  }
}

// Powers of ten that are exact doubles.
const POW10 = [
  1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
  1e21, 1e22,
];

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

function validSeriesName(name: string): boolean {
  const n = name.length;
  if (n === 0) return false;
  if (n <= MAX_SERIES_NAME_LENGTH) return true;
  // Characters, not UTF-16 units: a name of 128 emoji is 256 units long.
  if (n > 2 * MAX_SERIES_NAME_LENGTH) return false;
  let chars = 0;
  for (const _ of name) chars++;
  return chars <= MAX_SERIES_NAME_LENGTH;
}
