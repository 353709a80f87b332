// Runs `work` on every item with at most `limit` in flight: many Temporal calls at once without
// flooding the frontend (a sweep's workflow starts, a reconcile's describes).
export async function eachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
