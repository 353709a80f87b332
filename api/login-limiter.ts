// Login rate limiting: failed attempts per (address, login) within a sliding window.
// In-process: each web process counts its own; enough to make guessing slow.
export class LoginLimiter {
  private failures = new Map<string, number[]>();
  constructor(
    private readonly maxFailures = 10,
    private readonly windowMs = 5 * 60_000,
  ) {}

  private recent(key: string, now: number): number[] {
    const list = (this.failures.get(key) ?? []).filter((at) => now - at < this.windowMs);
    if (list.length === 0) this.failures.delete(key);
    else this.failures.set(key, list);
    return list;
  }

  blocked(ip: string, login: string, now = Date.now()): boolean {
    return this.recent(`${ip}\u0000${login}`, now).length >= this.maxFailures || this.recent(ip, now).length >= this.maxFailures * 5;
  }

  fail(ip: string, login: string, now = Date.now()): void {
    for (const key of [`${ip}\u0000${login}`, ip]) this.failures.set(key, [...this.recent(key, now), now]);
  }

  succeed(ip: string, login: string): void {
    this.failures.delete(`${ip}\u0000${login}`);
  }
}
