// `npm run temporal:server`: finds the Temporal server (for the tests that run Trainyard
// against a full server with mTLS) or builds it, and prints its folder.
import path from 'node:path';
import { TemporalCliError } from '../lib/temporal-cli.js';
import { ensureTemporalServer } from '../lib/temporal-server.js';

try {
  const found = await ensureTemporalServer({ log: (line) => console.error(line) });
  console.log(path.dirname(found.server));
} catch (error) {
  if (error instanceof TemporalCliError) {
    console.error(`trainyard: ${error.message}`);
    process.exit(1);
  }
  throw error;
}
