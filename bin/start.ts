// `npm start`: everything on one machine with no outside services — a Temporal dev
// server (unless TEMPORAL_ADDRESS), the database (PGlite unless DATABASE_URL),
// migrations, one worker serving the `local` machine, and the web server.
// Ctrl-C stops every server process it started; trainers keep running.
import path from 'node:path';
import { assertPortFree, startWebServer } from '../api/server.js';
import { bootDatabase, fail } from '../lib/boot.js';
import { loadConfigOrExit } from '../lib/config.js';
import { keepDataPrivate } from '../lib/private-dir.js';
import { connectTemporal } from '../lib/temporal.js';
import { ensureTemporalCli } from '../lib/temporal-cli.js';
import { startTemporalDevServer, type DevServer } from '../lib/temporal-dev-server.js';
import { startWorkers, type RunningWorkers } from '../workers/worker.js';

async function main(): Promise<void> {
  const config = loadConfigOrExit({ TRAINYARD_LOCAL_MACHINE: 'true', ...process.env });
  const cleanups: Array<() => Promise<void>> = [];
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    console.log('\nStopping… (trainers of active runs keep running and are re-attached on the next start)');
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch((error: unknown) =>
        console.error(`trainyard: while stopping: ${(error as Error).message}`),
      );
    }
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  try {
    // Before anything is written: the data directory and all in it are the owner's alone.
    keepDataPrivate(config.dataDir);
    // Fail on a taken port before starting anything else.
    await assertPortFree(config.port, config.host);

    // An address (a variable or a profile's) means an outside server, reached with the
    // TLS, API key and headers config read; none means a dev server of our own.
    let temporalAddress = config.temporal.address;
    let uiUrl = config.temporal.uiUrl;
    if (!temporalAddress) {
      const cli = await ensureTemporalCli({ log: (line) => console.log(line) });
      const server: DevServer = await startTemporalDevServer({
        cli,
        port: config.temporal.devPort,
        uiPort: config.temporal.devUiPort,
        namespace: config.temporal.namespace,
        dbFile: path.join(config.dataDir, 'temporal', 'temporal.sqlite'),
        stateDir: path.join(config.dataDir, 'temporal'),
      });
      cleanups.push(() => server.stop());
      temporalAddress = server.address;
      uiUrl = uiUrl ?? server.uiUrl;
    }

    const booted = await bootDatabase(config, { applicationName: 'trainyard-start' });
    cleanups.push(() => booted.connected.close());
    const { database } = booted.connected;

    const temporal = await connectTemporal(temporalAddress, config.temporal.namespace, { settings: config.temporal });
    cleanups.push(() => temporal.connection.close());

    const workers: RunningWorkers = await startWorkers({
      db: database.db,
      sql: database.sql,
      temporalAddress,
      temporalConnection: config.temporal,
      namespace: config.temporal.namespace,
      serveLocalMachine: config.localMachine,
      dataDir: config.dataDir,
      secret: booted.secret,
      keysDir: config.keysDir,
      buildId: config.buildId,
      metricsAddress: config.workerMetricsAddress,
      sdkMetricsAddress: config.workerSdkMetricsAddress,
      notifyRetry: { initialIntervalMs: config.notifyRetryInitialMs },
    });
    cleanups.push(() => workers.shutdown());

    const web = await startWebServer({
      config,
      db: database.db,
      sql: database.sql,
      secret: booted.secret,
      temporal,
      temporalUiUrl: uiUrl,
    });
    cleanups.push(() => web.app.close());

    console.log('');
    console.log(`Trainyard is running: ${web.url}`);
    if (uiUrl) console.log(`Temporal UI:          ${uiUrl}`);
    console.log(`Data directory:       ${config.dataDir}`);
    console.log(`Worker build:         ${workers.buildId}`);
    if (booted.seeded.admin) {
      console.log('');
      console.log(
        `First start: log in as "${booted.seeded.admin.login}" with password: ${booted.seeded.admin.password}`,
      );
      if (booted.seeded.admin.generated)
        console.log('(generated; set TRAINYARD_ADMIN_PASSWORD before the first start to choose it)');
    }
    console.log('Press Ctrl-C to stop.');
  } catch (error) {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    fail(error);
  }
}

void main();
