// The one uncaught error web and worker processes live through: postgres.js's deferred write
// on a connection the server closed. Anything else must not match.
import { describe, expect, it } from 'vitest';
import { isClosedSocketWrite } from '../../lib/postgres-quirks.js';

function errorWith(message: string, stack: string, kind: ErrorConstructor = TypeError): Error {
  const error = new kind(message);
  error.stack = `${kind.name}: ${message}\n${stack}`;
  return error;
}

const DRIVER_STACK =
  '    at nextWrite (file:///app/node_modules/postgres/src/connection.js:255:22)\n' +
  '    at process.processImmediate (node:internal/timers:483:21)';

describe('isClosedSocketWrite', () => {
  it("matches the driver's write on a closed socket", () => {
    expect(isClosedSocketWrite(errorWith("Cannot read properties of null (reading 'write')", DRIVER_STACK))).toBe(true);
  });

  it('matches nothing else: another message, another place, another kind, not an error', () => {
    expect(isClosedSocketWrite(errorWith("Cannot read properties of null (reading 'end')", DRIVER_STACK))).toBe(false);
    const elsewhere = '    at nextWrite (file:///app/lib/mine.js:1:1)';
    expect(isClosedSocketWrite(errorWith("Cannot read properties of null (reading 'write')", elsewhere))).toBe(false);
    expect(
      isClosedSocketWrite(errorWith("Cannot read properties of null (reading 'write')", DRIVER_STACK, Error)),
    ).toBe(false);
    expect(isClosedSocketWrite("Cannot read properties of null (reading 'write')")).toBe(false);
  });
});
