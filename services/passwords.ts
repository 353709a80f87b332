// Password hashing with scrypt at OWASP's recommended settings (N=2^17, r=8, p=1).
// Each hash takes 128 MiB and a thread-pool thread for a good fraction of a second, so
// at most a few run at once (hashGate): a flood of logins waits briefly or is told to
// come back, and never starves the server of memory or of the threads file and DNS
// work need.
import crypto from 'node:crypto';
import { promisify } from 'node:util';
import { ServiceError } from './errors.js';

const scrypt = promisify(crypto.scrypt) as (
  password: string,
  salt: Buffer,
  keylen: number,
  options: crypto.ScryptOptions,
) => Promise<Buffer>;

const N = 2 ** 17;
const r = 8;
const p = 1;
const KEY_LENGTH = 32;
// 128 * N * r bytes = 128 MiB of working memory; Node's default cap is 32 MiB.
const MAXMEM = 256 * 1024 * 1024;

export interface HashGateLimits {
  /** Hashes running at once. */
  concurrent: number;
  /** Hashes waiting for a turn; more are refused at once. */
  queued: number;
  /** How long one waits for a turn before it is refused. */
  maxWaitMs: number;
}

/** A small semaphore in front of scrypt, with counters tests and the curious read. */
export class HashGate {
  private waiting: Array<() => void> = [];
  readonly stats = { active: 0, peak: 0, waited: 0, refused: 0 };

  constructor(public limits: HashGateLimits) {}

  async run<T>(work: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await work();
    } finally {
      this.release();
    }
  }

  private take(): void {
    this.stats.active += 1;
    this.stats.peak = Math.max(this.stats.peak, this.stats.active);
  }

  private acquire(): Promise<void> {
    if (this.stats.active < this.limits.concurrent) {
      this.take();
      return Promise.resolve();
    }
    if (this.waiting.length >= this.limits.queued) return Promise.reject(this.busy());
    this.stats.waited += 1;
    return new Promise((resolve, reject) => {
      const go = () => {
        clearTimeout(timer);
        this.take();
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiting = this.waiting.filter((w) => w !== go);
        reject(this.busy());
      }, this.limits.maxWaitMs);
      this.waiting.push(go);
    });
  }

  /** The freed turn goes straight to the first waiter: nobody arriving meanwhile can take it. */
  private release(): void {
    this.stats.active -= 1;
    this.waiting.shift()?.();
  }

  private busy(): ServiceError {
    this.stats.refused += 1;
    return new ServiceError('unavailable', {
      en: 'Too many logins are being checked at once; try again in a few seconds.',
      ru: 'Сейчас проверяется слишком много входов; повторите через несколько секунд.',
    });
  }
}

export const hashGate = new HashGate({ concurrent: 2, queued: 64, maxWaitMs: 10_000 });

export async function hashPassword(password: string): Promise<string> {
  const salt = crypto.randomBytes(16);
  const key = await hashGate.run(() =>
    scrypt(password.normalize('NFC'), salt, KEY_LENGTH, { N, r, p, maxmem: MAXMEM }),
  );
  return `scrypt$${N}$${r}$${p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, rr, pp, salt, key] = stored.split('$');
  if (scheme !== 'scrypt' || !n || !rr || !pp || !salt || !key) return false;
  const expected = Buffer.from(key, 'base64');
  const actual = await hashGate.run(() =>
    scrypt(password.normalize('NFC'), Buffer.from(salt, 'base64'), expected.length, {
      N: Number(n),
      r: Number(rr),
      p: Number(pp),
      maxmem: MAXMEM,
    }),
  );
  return crypto.timingSafeEqual(actual, expected);
}

/** Generated passwords and tokens: URL-safe, 128+ bits. */
export function randomSecret(bytes = 18): string {
  return crypto.randomBytes(bytes).toString('base64url');
}

export function sha256(value: string): string {
  return crypto.createHash('sha256').update(value).digest('hex');
}
