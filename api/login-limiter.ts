// Login rate limiting: failed attempts within a sliding window, counted per (address,
// login), per address and per login. The last one holds however many addresses a
// guesser spreads over. In-process: each web process counts its own; enough to make
// guessing slow.
export interface LoginLimits {
  /** Failures of one login from one address. */
  perAddressAndLogin: number;
  /** Failures from one address, whatever the login. */
  perAddress: number;
  /** Failures of one login, from anywhere. */
  perLogin: number;
  windowMs: number;
}

export const DEFAULT_LOGIN_LIMITS: LoginLimits = {
  perAddressAndLogin: 10,
  perAddress: 50,
  perLogin: 20,
  windowMs: 5 * 60_000,
};

// Past this many keys, stale ones are swept, so random logins cannot grow the map for ever.
const SWEEP_AT = 10_000;

export class LoginLimiter {
  private failures = new Map<string, number[]>();
  private readonly limits: LoginLimits;

  constructor(limits: Partial<LoginLimits> = {}) {
    this.limits = { ...DEFAULT_LOGIN_LIMITS, ...limits };
  }

  private keys(ip: string, login: string): Array<[string, number]> {
    return [
      [`p\u0000${ip}\u0000${login}`, this.limits.perAddressAndLogin],
      [`a\u0000${ip}`, this.limits.perAddress],
      [`l\u0000${login}`, this.limits.perLogin],
    ];
  }

  private recent(key: string, now: number): number[] {
    const list = (this.failures.get(key) ?? []).filter((at) => now - at < this.limits.windowMs);
    if (list.length === 0) this.failures.delete(key);
    else this.failures.set(key, list);
    return list;
  }

  blocked(ip: string, login: string, now = Date.now()): boolean {
    return this.keys(ip, login).some(([key, max]) => this.recent(key, now).length >= max);
  }

  fail(ip: string, login: string, now = Date.now()): void {
    if (this.failures.size > SWEEP_AT) for (const key of [...this.failures.keys()]) this.recent(key, now);
    for (const [key] of this.keys(ip, login)) this.failures.set(key, [...this.recent(key, now), now]);
  }

  /** A right password clears that address's count for the login; the login's own count runs out with the window. */
  succeed(ip: string, login: string): void {
    this.failures.delete(this.keys(ip, login)[0]![0]);
  }
}
