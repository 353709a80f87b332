// The host-key read of the "fetch and confirm" step, run by a worker: in production the
// web server may not reach machines, the workers do. Registered on every queue a worker
// polls (the control queue and each machine's), so a new machine's address is read by
// any worker and an existing machine's by one that serves it.
import { ApplicationFailure } from '@temporalio/common';
import { FAILURE } from '../domain/failures.js';
import { parseAddress } from '../executors/factory.js';
import { fetchHostKeyFingerprint } from '../executors/index.js';
import type { HostKeyActivities } from './types.js';

export function createHostKeyActivities(): HostKeyActivities {
  return {
    async fetchHostKey(address, { timeoutMs }) {
      const { host, port } = parseAddress(address);
      try {
        return await fetchHostKeyFingerprint(host, port, { timeoutMs });
      } catch (error) {
        // Expected (a wrong address, a closed port): the caller turns it into an error on the address field.
        throw ApplicationFailure.nonRetryable((error as Error).message, FAILURE.hostKeyUnreadable);
      }
    },
  };
}
