// ensureSearchAttributes against a fake operator service: it adds only what is missing, and
// a server that will not list or add them is a logged line naming what to register, not a
// failure; an unreachable server still throws (the caller retries).
import type { Connection } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { ensureSearchAttributes, SEARCH_ATTRIBUTES } from '../../lib/temporal-search-attributes.js';

const ALL = Object.keys(SEARCH_ATTRIBUTES);

/** A gRPC service error as the SDK throws it (isGrpcServiceError looks at details and metadata). */
function grpcError(code: number, details: string): Error {
  return Object.assign(new Error(`${code} ${details}`), { code, details, metadata: {} });
}

/** A fake of the two operator calls: `registered` is the namespace's custom attributes. */
function fakeConnection(options: {
  registered?: string[];
  listError?: Error;
  addError?: Error;
  addedByOthers?: string[];
}) {
  const registered = new Set(options.registered ?? []);
  const added: string[][] = [];
  const connection = {
    operatorService: {
      async listSearchAttributes() {
        if (options.listError) throw options.listError;
        return { customAttributes: Object.fromEntries([...registered].map((name) => [name, 2])) };
      },
      async addSearchAttributes(request: { searchAttributes: Record<string, number> }) {
        added.push(Object.keys(request.searchAttributes));
        if (options.addError) {
          for (const name of options.addedByOthers ?? []) registered.add(name);
          throw options.addError;
        }
        for (const name of Object.keys(request.searchAttributes)) registered.add(name);
      },
    },
  } as unknown as Connection;
  return { connection, added };
}

describe('ensureSearchAttributes', () => {
  it('adds nothing and says nothing when the namespace has them all', async () => {
    const fake = fakeConnection({ registered: ALL });
    const lines: string[] = [];
    await ensureSearchAttributes(fake.connection, 'default', (line) => lines.push(line));
    expect(fake.added).toEqual([]);
    expect(lines).toEqual([]);
  });

  it('adds only the attributes the namespace lacks', async () => {
    const fake = fakeConnection({ registered: [ALL[0]!] });
    await ensureSearchAttributes(fake.connection, 'default', () => {});
    expect(fake.added).toEqual([ALL.slice(1)]);
  });

  it('goes on when it may not add them, naming what to register and how', async () => {
    const fake = fakeConnection({ registered: [ALL[0]!], addError: grpcError(7, 'Request unauthorized.') });
    const lines: string[] = [];
    await ensureSearchAttributes(fake.connection, 'training.a1b2c', (line) => lines.push(line));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(
      `could not register the search attributes ${ALL.slice(1).join(', ')} (Request unauthorized.)`,
    );
    expect(lines[0]).toContain(
      `temporal operator search-attribute create --namespace training.a1b2c --name ${ALL[1]} --type Keyword`,
    );
    expect(lines[0]).toContain('Until they exist, starting a process fails.');
  });

  it('goes on when it may not even list them, naming them all', async () => {
    const fake = fakeConnection({ listError: grpcError(12, 'method ListSearchAttributes not implemented') });
    const lines: string[] = [];
    await ensureSearchAttributes(fake.connection, 'default', (line) => lines.push(line));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`search attributes ${ALL.join(', ')} (method ListSearchAttributes not implemented)`);
  });

  it('says nothing when another process added them at the same moment', async () => {
    const fake = fakeConnection({ addError: grpcError(6, 'already exists'), addedByOthers: ALL });
    const lines: string[] = [];
    await ensureSearchAttributes(fake.connection, 'default', (line) => lines.push(line));
    expect(lines).toEqual([]);
  });

  it('throws when the server is unreachable, so connectTemporal retries', async () => {
    const fake = fakeConnection({ listError: grpcError(14, 'connection refused') });
    await expect(ensureSearchAttributes(fake.connection, 'default', () => {})).rejects.toThrow('connection refused');
  });
});
