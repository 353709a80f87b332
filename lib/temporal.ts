// Temporal client connections for the web server, the CLI and the worker's own use.
import { Client, Connection } from '@temporalio/client';
import { ensureSearchAttributes } from './temporal-search-attributes.js';
import { EXPECTED_ERROR } from '../domain/failures.js';

export class TemporalUnreachableError extends Error {
  override name = EXPECTED_ERROR.temporalUnreachable;
}

export async function connectTemporal(address: string, namespace: string, options: { timeoutMs?: number } = {}): Promise<{ connection: Connection; client: Client }> {
  const deadline = Date.now() + (options.timeoutMs ?? 15_000);
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const connection = await Connection.connect({ address, connectTimeout: 2000 });
      await connection.workflowService.getSystemInfo({});
      await ensureSearchAttributes(connection, namespace);
      return { connection, client: new Client({ connection, namespace }) };
    } catch (error) {
      lastError = error;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  throw new TemporalUnreachableError(`Cannot reach Temporal at ${address}: ${(lastError as Error)?.message}. Check TEMPORAL_ADDRESS (or unset it to let npm start run a dev server).`);
}
