// Search attributes that let on-call staff find a training process's workflow in the
// Temporal UI. Registered by the dev server's flags, or by ensureSearchAttributes on
// an outside server.
import type { Connection } from '@temporalio/client';
import protos from '@temporalio/proto';
import { SEARCH_KEYS } from '../workflows/messages.js';

const { temporal } = protos;

/** Name → type for the dev server's `--search-attribute` flags; every key is a Keyword. */
export const SEARCH_ATTRIBUTES: Record<string, 'Keyword'> = Object.fromEntries(Object.values(SEARCH_KEYS).map((key) => [key.name, 'Keyword']));

/** Idempotent: registers only the attributes the namespace lacks. */
export async function ensureSearchAttributes(connection: Connection, namespace: string): Promise<void> {
  const existing = await connection.operatorService.listSearchAttributes({ namespace });
  const missing: Record<string, number> = {};
  for (const name of Object.keys(SEARCH_ATTRIBUTES)) {
    if (!(name in (existing.customAttributes ?? {}))) {
      missing[name] = temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
    }
  }
  if (Object.keys(missing).length > 0) {
    await connection.operatorService.addSearchAttributes({ namespace, searchAttributes: missing });
  }
}
