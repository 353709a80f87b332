// postgres.js 3.4.9 sends a small write on the next turn of the event loop (setImmediate).
// When the server closes the connection in between (pg_terminate_backend, a failover, a
// restart), that deferred write calls `write` on a socket the driver has already set to
// null and throws outside any query, where nothing can catch it: the process dies
// (porsager/postgres issues 1154 and 1208; the fixes are not released). The connection is
// closed either way and its queries fail with CONNECTION_CLOSED, which every caller here
// retries, so the throw carries no news. Web and worker processes let exactly that throw
// pass with a log line; any other uncaught error still ends the process as Node would.

/** The deferred write of postgres.js on a connection the server has closed. */
export function isClosedSocketWrite(error: unknown): boolean {
  if (!(error instanceof TypeError)) return false;
  const stack = error.stack ?? '';
  return (
    /reading 'write'/.test(error.message) &&
    /\bnextWrite\b/.test(stack) &&
    /postgres[\\/]src[\\/]connection\.js/.test(stack)
  );
}

let installed = false;

/** For a command's process (not a test runner, which has its own handler). Installs once. */
export function surviveClosedSocketWrites(log: (line: string) => void): void {
  if (installed) return;
  installed = true;
  process.on('uncaughtException', (error) => {
    if (isClosedSocketWrite(error)) {
      log('The database closed a connection while a write to it was pending; the driver reconnects.');
      return;
    }
    // A listener stops Node's own crash; keep it for everything else.
    if (process.listenerCount('uncaughtException') === 1) {
      console.error(error);
      process.exit(1);
    }
  });
}
