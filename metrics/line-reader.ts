// Reader for the trainer's metrics file (docs/design.md §5): JSON lines such as
// {"step":120,"total_steps":5000,"epoch":2,"lr":0.0009,"loss":0.41}.
// Bytes go in as they are read from the file; points and progress come out.
//
// Offsets (the exactly-once contract): `consumedBytes` only ever advances to
// the end of a line, newline included. The reader keeps the bytes of an
// unfinished last line (or, for an oversized one, just counts them) and
// finishes it on a later push. So if the caller pushes the file sequentially
// from offset O, then O + the sum of consumedBytes so far is always a line
// boundary: commit that offset with the points, and a new reader resumes from
// it. Bytes pushed = bytes consumed + `pendingBytes`.

import { BAD, BLANK, LineParser } from './line-parser.js';

const DEFAULT_MAX_LINE_BYTES = 64 * 1024;

export interface MetricPoint {
  series: string;
  step: number;
  value: number;
}

export interface MetricsProgress {
  step: number;
  totalSteps?: number;
  epoch?: number;
}

export interface PushResult {
  /**
   * In file order. A series given twice (in one line or in two) yields a
   * point each time; the store keeps the later one, as DESIGN §5 says.
   */
  points: MetricPoint[];
  /** Progress of the last valid line in this push, or null if it had none. */
  progress: MetricsProgress | null;
  /** Bytes of whole lines finished by this push (skipped ones included); see the file header. */
  consumedBytes: number;
  /**
   * Lines that are not a JSON object with a valid `step`, or that name a member with U+0000 or an unpaired surrogate.
   */
  malformed: number;
  /** Lines longer than maxLineBytes, counted once each and skipped. */
  oversized: number;
}

export interface MetricsLineReaderOptions {
  /** The longest line, in bytes without its newline, that is parsed. */
  maxLineBytes?: number;
}

const NEWLINE = 0x0a;

export class MetricsLineReader {
  readonly maxLineBytes: number;
  private readonly decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  private readonly parser = new LineParser();

  // The unfinished last line, at most maxLineBytes long.
  private carry = new Uint8Array(0);
  private carryLen = 0;
  // Inside an oversized line (already counted): bytes skipped so far.
  private skipping = false;
  private skippedBytes = 0;

  // Collected during one push.
  private points: MetricPoint[] = [];
  private malformed = 0;
  private oversized = 0;
  // Progress of the last valid line; step -1 when none yet.
  private progressStep = -1;
  private progressTotal: number | undefined;
  private progressEpoch: number | undefined;

  constructor(options: MetricsLineReaderOptions = {}) {
    const max = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`maxLineBytes must be a positive integer, got ${max}`);
    this.maxLineBytes = max;
  }

  /** Bytes pushed but not yet consumed: an unfinished line, kept or being skipped. */
  get pendingBytes(): number {
    return this.skipping ? this.skippedBytes : this.carryLen;
  }

  /** Takes the next bytes of the file. The chunk is not kept; the caller may reuse it. */
  push(chunk: Uint8Array): PushResult {
    let consumed = 0;
    let pos = 0;
    if (this.skipping) {
      const nl = chunk.indexOf(NEWLINE);
      if (nl < 0) {
        this.skippedBytes += chunk.length;
        return this.result(0);
      }
      consumed += this.skippedBytes + nl + 1;
      this.skipping = false;
      this.skippedBytes = 0;
      pos = nl + 1;
    } else if (this.carryLen > 0) {
      const nl = chunk.indexOf(NEWLINE);
      if (nl < 0) {
        this.keepPartial(chunk, 0, chunk.length);
        return this.result(0);
      }
      const lineLen = this.carryLen + nl;
      if (lineLen > this.maxLineBytes) {
        this.oversized++;
      } else {
        this.appendCarry(chunk, 0, nl + 1);
        this.parseLines(this.carry, 0, lineLen + 1);
      }
      consumed += lineLen + 1;
      this.carryLen = 0;
      pos = nl + 1;
    }
    const lastNl = chunk.lastIndexOf(NEWLINE);
    if (lastNl >= pos) {
      this.parseSpan(chunk, pos, lastNl + 1);
      consumed += lastNl + 1 - pos;
      pos = lastNl + 1;
    }
    if (pos < chunk.length) this.keepPartial(chunk, pos, chunk.length);
    return this.result(consumed);
  }

  /**
   * The end of the file has been reached for good (the trainer has exited):
   * a last line without its newline is parsed as a whole line and consumed.
   */
  finish(): PushResult {
    let consumed = 0;
    if (this.skipping) {
      consumed = this.skippedBytes;
      this.skipping = false;
      this.skippedBytes = 0;
    } else if (this.carryLen > 0) {
      const text = this.decoder.decode(this.carry.subarray(0, this.carryLen));
      this.parseLine(text, 0, text.length);
      consumed = this.carryLen;
      this.carryLen = 0;
    }
    return this.result(consumed);
  }

  private result(consumedBytes: number): PushResult {
    let progress: MetricsProgress | null = null;
    if (this.progressStep >= 0) {
      progress = { step: this.progressStep };
      if (this.progressTotal !== undefined) progress.totalSteps = this.progressTotal;
      if (this.progressEpoch !== undefined) progress.epoch = this.progressEpoch;
    }
    const out: PushResult = {
      points: this.points,
      progress,
      consumedBytes,
      malformed: this.malformed,
      oversized: this.oversized,
    };
    this.points = [];
    this.progressStep = -1;
    this.malformed = 0;
    this.oversized = 0;
    return out;
  }

  // Bytes of a line whose newline has not arrived yet.
  private keepPartial(chunk: Uint8Array, from: number, to: number): void {
    if (this.carryLen + (to - from) > this.maxLineBytes) {
      this.oversized++;
      this.skipping = true;
      this.skippedBytes = this.carryLen + (to - from);
      this.carryLen = 0;
      return;
    }
    this.appendCarry(chunk, from, to);
  }

  private appendCarry(chunk: Uint8Array, from: number, to: number): void {
    const need = this.carryLen + (to - from);
    if (need > this.carry.length) {
      // Doubling keeps a line that trickles in byte by byte linear; +1 for its newline.
      const grown = new Uint8Array(Math.min(Math.max(need, this.carry.length * 2, 256), this.maxLineBytes + 1));
      grown.set(this.carry.subarray(0, this.carryLen));
      this.carry = grown;
    }
    this.carry.set(chunk.subarray(from, to), this.carryLen);
    this.carryLen = need;
  }

  // Whole lines in bytes[start, end), the last one ending at end - 1.
  private parseSpan(bytes: Uint8Array, start: number, end: number): void {
    if (end - start <= this.maxLineBytes + 1) {
      this.parseLines(bytes, start, end);
      return;
    }
    // Long enough to hide an oversized line: find them and parse around them.
    let segment = start;
    let p = start;
    while (p < end) {
      const nl = bytes.indexOf(NEWLINE, p);
      if (nl - p > this.maxLineBytes) {
        if (p > segment) this.parseLines(bytes, segment, p);
        this.oversized++;
        segment = nl + 1;
      }
      p = nl + 1;
    }
    if (segment < end) this.parseLines(bytes, segment, end);
  }

  // Decodes whole lines at once (a newline byte never occurs inside a UTF-8
  // sequence, so lines split the same way in bytes and in text).
  private parseLines(bytes: Uint8Array, start: number, end: number): void {
    const text = this.decoder.decode(bytes.subarray(start, end));
    let i = 0;
    while (i < text.length) {
      let j = text.indexOf('\n', i);
      if (j < 0) j = text.length;
      this.parseLine(text, i, j);
      i = j + 1;
    }
  }

  private parseLine(text: string, start: number, end: number): void {
    const p = this.parser;
    const r = p.parse(text, start, end);
    if (r === BLANK) return;
    if (r === BAD) {
      this.malformed++;
      return;
    }
    const step = p.step;
    for (let k = 0; k < p.count; k++) {
      this.points.push({ series: p.names[k]!, step, value: p.values[k]! });
    }
    this.progressStep = step;
    this.progressTotal = p.totalSteps;
    this.progressEpoch = p.epoch;
  }
}
