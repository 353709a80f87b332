import { describe, expect, it } from 'vitest';
import { freshPass } from '../../lib/fresh-pass.js';

// A pass that records what it saw of `state` when it started, and finishes when released.
function recorder() {
  const state = { value: 0 };
  const seen: number[] = [];
  const releases: Array<() => void> = [];
  const run = () => {
    seen.push(state.value);
    return new Promise<void>((resolve) => releases.push(resolve));
  };
  const release = async () => {
    releases.shift()!();
    await new Promise((resolve) => setTimeout(resolve, 0));
  };
  return { state, seen, run, release };
}

describe('freshPass', () => {
  it('gives a caller arriving during a pass the next pass, which sees its change', async () => {
    const r = recorder();
    const pass = freshPass(r.run);
    const first = pass();
    r.state.value = 1;
    let secondDone = false;
    const second = pass().then(() => (secondDone = true));
    await r.release();
    await first;
    expect(secondDone).toBe(false);
    expect(r.seen).toEqual([0, 1]);
    await r.release();
    await second;
    expect(secondDone).toBe(true);
  });

  it('runs one queued pass for all callers arriving during a pass', async () => {
    const r = recorder();
    const pass = freshPass(r.run);
    void pass();
    const waiting = [pass(), pass(), pass()];
    expect(new Set(waiting).size).toBe(1);
    await r.release();
    await r.release();
    await Promise.all(waiting);
    expect(r.seen).toHaveLength(2);
    expect(pass.current()).toBeNull();
  });

  it('runs the queued pass even when the one under way fails, and lets the failure reach its caller', async () => {
    const state = { calls: 0 };
    let fail!: (e: Error) => void;
    const pass = freshPass(() => {
      state.calls++;
      return state.calls === 1 ? new Promise<void>((_, reject) => (fail = reject)) : Promise.resolve();
    });
    const first = pass();
    const second = pass();
    fail(new Error('temporal down'));
    await expect(first).rejects.toThrow('temporal down');
    await expect(second).resolves.toBeUndefined();
    expect(state.calls).toBe(2);
  });

  it('reports the pass a shutdown must wait for', async () => {
    const r = recorder();
    const pass = freshPass(r.run);
    expect(pass.current()).toBeNull();
    const first = pass();
    expect(pass.current()).toBe(first);
    const next = pass();
    expect(pass.current()).toBe(next);
    await r.release();
    await r.release();
    await next;
    expect(pass.current()).toBeNull();
  });
});
