// The restart policy's pure rules, its validation, and the stall clock.
import { describe, expect, it } from 'vitest';
import { StallClock } from '../../activities/stall.js';
import { exitFailureClass, restartPolicyOf, shouldRestart } from '../../domain/restart.js';
import { ServiceError } from '../../services/errors.js';
import { validRestart, validStallSeconds } from '../../services/restart-policy.js';

const policy = restartPolicyOf({ onFailure: 2 });

describe('failure classes', () => {
  it('call exit 137 and an OOM message in stderr out of memory, anything else an exit code', () => {
    expect(exitFailureClass(137, '')).toBe('oom');
    expect(exitFailureClass(1, 'RuntimeError: CUDA out of memory. Tried to allocate 2 GiB')).toBe('oom');
    expect(exitFailureClass(null, 'Out of memory: Killed process 4242 (python)')).toBe('oom');
    expect(exitFailureClass(1, 'Traceback: ValueError')).toBe('exit_code');
    expect(exitFailureClass(null, '')).toBe('exit_code');
  });
});

describe('shouldRestart', () => {
  it('restarts up to onFailure times', () => {
    expect([1, 2, 3].map((attempt) => shouldRestart(policy, 'exit_code', attempt))).toEqual([true, true, false]);
  });
  it('never restarts without a policy, without a class, or a class in except', () => {
    expect(shouldRestart(restartPolicyOf(null), 'exit_code', 1)).toBe(false);
    expect(shouldRestart(policy, null, 1)).toBe(false);
    expect(shouldRestart({ ...policy, except: ['oom'] }, 'oom', 1)).toBe(false);
  });
  it('restarts a lost machine only with onMachineLost', () => {
    expect(shouldRestart(policy, 'machine_lost', 1)).toBe(false);
    expect(shouldRestart({ ...policy, onMachineLost: true }, 'machine_lost', 1)).toBe(true);
  });
});

describe('validRestart', () => {
  it('fills in the defaults and drops repeated classes', () => {
    expect(validRestart({ onFailure: 3, except: ['oom', 'oom'] })).toEqual({
      onFailure: 3,
      backoffSeconds: 30,
      onMachineLost: false,
      except: ['oom'],
    });
    expect(validRestart(null)).toBeNull();
  });
  it.each([
    [{ onFailure: -1 }, 'restart.onFailure'],
    [{ onFailure: 1.5 }, 'restart.onFailure'],
    [{ backoffSeconds: '30' }, 'restart.backoffSeconds'],
    [{ onMachineLost: 'yes' }, 'restart.onMachineLost'],
    [{ except: ['<script>'] }, 'restart.except'],
    [{ except: 'oom' }, 'restart.except'],
    [{ retries: 3 }, 'restart'],
    [[1], 'restart'],
  ])('refuses %j, naming %s', (value, field) => {
    let error: unknown;
    try {
      validRestart(value);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ServiceError);
    expect((error as ServiceError).field).toBe(field);
  });
  it('bounds stallSeconds', () => {
    expect(validStallSeconds(null)).toBeNull();
    expect(validStallSeconds(60)).toBe(60);
    expect(() => validStallSeconds(1)).toThrow(ServiceError);
  });
});

describe('the stall clock', () => {
  it('reports a stall once the silence passes stallSeconds, and its end at the next line', () => {
    const clock = new StallClock(5000, 0, 0, false);
    expect(clock.observe(10, 1000)).toBeNull();
    expect(clock.observe(10, 6000)).toBeNull();
    expect(clock.observe(10, 6001)).toBe('stalled');
    expect(clock.observe(10, 9000)).toBeNull();
    expect(clock.observe(20, 9500)).toBe('resumed');
    expect(clock.observe(20, 14_000)).toBeNull();
  });
  it('never reports without stallSeconds, and does not count while paused', () => {
    expect(new StallClock(null, 0, 0, false).observe(0, 1e9)).toBeNull();
    const clock = new StallClock(5000, 0, 0, false);
    clock.pause(4000);
    expect(clock.observe(0, 8000)).toBeNull();
    expect(clock.observe(0, 9001)).toBe('stalled');
  });
});
