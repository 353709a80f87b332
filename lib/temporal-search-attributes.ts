// Search attributes that let on-call staff find a training process's workflow in the
// Temporal UI. Registered by the dev server's flags, or by ensureSearchAttributes on
// an outside server — where the namespace may have them already, or where this
// connection may not add them (Temporal Cloud): then it says what to register and goes on.
import { status } from '@grpc/grpc-js';
import { isGrpcServiceError, type Connection } from '@temporalio/client';
import protos from '@temporalio/proto';
import { SEARCH_KEYS } from '../workflows/messages.js';

const { temporal } = protos;

/** Name → type for the dev server's `--search-attribute` flags; every key is a Keyword. */
export const SEARCH_ATTRIBUTES: Record<string, 'Keyword'> = Object.fromEntries(
  Object.values(SEARCH_KEYS).map((key) => [key.name, 'Keyword']),
);

/** gRPC codes that mean "the server is not there right now": worth a retry, not a warning. */
const TRANSIENT: ReadonlySet<number> = new Set([status.DEADLINE_EXCEEDED, status.UNAVAILABLE]);

async function missingFrom(connection: Connection, namespace: string): Promise<string[]> {
  const existing = await connection.operatorService.listSearchAttributes({ namespace });
  return Object.keys(SEARCH_ATTRIBUTES).filter((name) => !(name in (existing.customAttributes ?? {})));
}

/** What to run (or click) to register `names`, for a message. */
export function registrationHint(namespace: string, names: string[]): string {
  const flags = names.map((name) => `--name ${name} --type Keyword`).join(' ');
  return `temporal operator search-attribute create --namespace ${namespace} ${flags} (on Temporal Cloud: the namespace's search attributes in the Cloud UI, or tcld)`;
}

/**
 * Idempotent: registers only the attributes the namespace lacks. A server that will not
 * list or add them (no permission, not supported, out of slots) is told about in one
 * line through `log` and is not an error; until they exist, Temporal refuses to start a
 * process's workflow. A server that is unreachable throws, so the caller retries.
 */
export async function ensureSearchAttributes(
  connection: Connection,
  namespace: string,
  log: (line: string) => void = (line) => console.warn(`trainyard: ${line}`),
): Promise<void> {
  let missing = Object.keys(SEARCH_ATTRIBUTES);
  try {
    missing = await missingFrom(connection, namespace);
    if (missing.length === 0) return;
    const searchAttributes = Object.fromEntries(
      missing.map((name) => [name, temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD]),
    );
    await connection.operatorService.addSearchAttributes({ namespace, searchAttributes });
  } catch (error) {
    if (!isGrpcServiceError(error) || TRANSIENT.has(error.code ?? -1)) throw error;
    // Another process may have added them at the same moment.
    if (
      error.code === status.ALREADY_EXISTS &&
      (await missingFrom(connection, namespace).catch(() => missing)).length === 0
    )
      return;
    log(
      `Temporal namespace ${namespace}: could not register the search attributes ${missing.join(', ')} (${error.details || error.message}); ` +
        `register them as Keyword, e.g. ${registrationHint(namespace, missing)}. Until they exist, starting a process fails.`,
    );
  }
}
