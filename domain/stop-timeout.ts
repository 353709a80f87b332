// How long one attempt of stopTrainer may take. Pure: the workflow computes it per run
// from the template's grace period and the machine's lost timeout.

/** The stop activity's timeout before the grace period counted: the old fixed value, and the floor. */
export const STOP_TIMEOUT_FLOOR_SECONDS = 30 * 60;
/** Room for the KILL wait, reading the handle and slow round trips on top of grace and silence. */
const STOP_TIMEOUT_ROOM_SECONDS = 10 * 60;

/**
 * An attempt must outlast the grace period (templates allow up to an hour) plus the time
 * the stop tolerates an unreachable machine: an attempt that timed out first would be
 * retried, and a trainer that ignores TERM would never get its KILL.
 */
export function stopTimeoutSeconds(stopGraceSeconds: number, lostTimeoutSeconds: number): number {
  const grace = Number.isFinite(stopGraceSeconds) && stopGraceSeconds > 0 ? stopGraceSeconds : 0;
  const lost = Number.isFinite(lostTimeoutSeconds) && lostTimeoutSeconds > 0 ? lostTimeoutSeconds : 0;
  return Math.max(STOP_TIMEOUT_FLOOR_SECONDS, Math.ceil(grace + lost + STOP_TIMEOUT_ROOM_SECONDS));
}
