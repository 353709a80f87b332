import { describe, expect, it } from 'vitest';
import { STOP_TIMEOUT_FLOOR_SECONDS, stopTimeoutSeconds } from '../../domain/stop-timeout.js';

describe('stopTimeoutSeconds', () => {
  it('outlasts the grace period and the machine silence a stop tolerates, whatever the template allows', () => {
    for (const grace of [0, 30, 1799, 1800, 3600]) {
      for (const lost of [10, 600, 7 * 86_400]) {
        expect(stopTimeoutSeconds(grace, lost)).toBeGreaterThan(grace + lost);
      }
    }
    expect(stopTimeoutSeconds(3600, 600)).toBeGreaterThan(30 * 60);
  });

  it('never goes below the old fixed 30 minutes, and treats nonsense as zero', () => {
    expect(stopTimeoutSeconds(30, 600)).toBe(STOP_TIMEOUT_FLOOR_SECONDS);
    expect(stopTimeoutSeconds(Number.NaN, -5)).toBe(STOP_TIMEOUT_FLOOR_SECONDS);
  });
});
