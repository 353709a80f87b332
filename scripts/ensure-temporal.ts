// `npm run temporal:cli`: finds the Temporal CLI or builds it, and prints its path.
import { ensureTemporalCli, TemporalCliError } from '../lib/temporal-cli.js';

try {
  const cli = await ensureTemporalCli({ log: (line) => console.error(line) });
  console.log(cli.path);
} catch (error) {
  if (error instanceof TemporalCliError) {
    console.error(`trainyard: ${error.message}`);
    process.exit(1);
  }
  throw error;
}
