// One pass at a time over some shared state (a worker's reconcile), where a caller must get a
// pass that *started after* its call: the one under way may have read the database before the
// caller changed it. Callers arriving while a pass runs share the single pass queued behind it.
export interface FreshPass {
  (): Promise<void>;
  /** The pass under way or queued, if any (a shutdown waits for it). */
  current(): Promise<void> | null;
}

export function freshPass(run: () => Promise<void>): FreshPass {
  let running: Promise<void> | null = null;
  let queued: Promise<void> | null = null;
  const start = (): Promise<void> => (running = run().finally(() => (running = null)));
  const pass = (): Promise<void> => {
    if (!running) return start();
    queued ??= running
      .catch(() => undefined)
      .then(() => {
        queued = null;
        return start();
      });
    return queued;
  };
  return Object.assign(pass, { current: () => queued ?? running });
}
