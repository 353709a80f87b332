// The CLI: `npm run trainyard -- <command>`, on the same configuration as `npm start`.
// With the embedded database it connects to the one `npm start` serves, or opens it itself.
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { startWebServer } from '../api/server.js';
import { connectDatabase } from '../db/connect.js';
import { runMigrations } from '../db/migrate.js';
import { bootDatabase, fail } from '../lib/boot.js';
import { loadConfigOrExit, type Config } from '../lib/config.js';
import { keepDataPrivate } from '../lib/private-dir.js';
import { connectTemporal } from '../lib/temporal.js';
import { createToken, createUser, grantRole, revokeToken, setPassword } from '../services/accounts.js';
import { CLI_ACTOR, recordAudit, type AuditEntry } from '../services/audit.js';
import { ServiceError } from '../services/errors.js';
import { seedBuiltins } from '../services/seed.js';
import { reconcileInstallation, reportLines } from '../workers/reconcile.js';
import { startWorkers } from '../workers/worker.js';
import { EXPECTED_ERROR } from '../domain/failures.js';

const USAGE = `Usage: npm run trainyard -- <command>

  web                                   the web server (needs TEMPORAL_ADDRESS or a profile, see README)
  worker                                a worker (needs TEMPORAL_ADDRESS or a profile, see README)
  migrate                               apply database migrations
  reconcile [--dry-run] [--keep-orphans]
                                        restore processes whose workflow is gone, end this
                                        installation's workflows that no process has (a
                                        restored backup); workers do it at start too
  user add <login> --role <role> [--template <id>]
                                        password from TRAINYARD_PASSWORD, else asked for
  user set-password <login>             password from TRAINYARD_PASSWORD, else asked for
  user grant <login> --role <role> [--template <id>]
  token create <login> [--name N] [--expires-days D]
                                        prints the token alone on its last line
  token revoke <id>
`;

class UsageError extends Error {
  override name = EXPECTED_ERROR.usage;
}

async function askPassword(): Promise<string> {
  const fromEnv = process.env.TRAINYARD_PASSWORD;
  if (fromEnv) return fromEnv;
  if (!process.stdin.isTTY) throw new UsageError('Set TRAINYARD_PASSWORD (no terminal to ask on).');
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  // Hide what is typed: the readline echo goes through _writeToOutput.
  const anyRl = rl as unknown as { _writeToOutput: (s: string) => void; output: NodeJS.WritableStream };
  anyRl._writeToOutput = (s: string) => {
    if (s.includes('Password')) anyRl.output.write(s);
  };
  const password = await new Promise<string>((resolve) => rl.question('Password: ', resolve));
  rl.close();
  process.stderr.write('\n');
  return password;
}

function templateOption(value: string | undefined): number | null {
  if (value === undefined) return null;
  const id = Number(value);
  if (!Number.isInteger(id) || id <= 0) throw new UsageError(`--template takes a template id, not "${value}".`);
  return id;
}

async function withDb<T>(
  config: Config,
  work: (db: Awaited<ReturnType<typeof connectDatabase>>['database']['db']) => Promise<T>,
): Promise<T> {
  const connected = await connectDatabase(config, { applicationName: 'trainyard-cli', max: 2 });
  try {
    await runMigrations(connected.database);
    // Roles exist even before the first `npm start`, so `user add --role operator` works on a new install.
    await seedBuiltins(connected.database.db);
    return await work(connected.database.db);
  } finally {
    await connected.close();
  }
}

type Db = Awaited<ReturnType<typeof connectDatabase>>['database']['db'];

/** Runs a change and records it in the audit log with the CLI as the actor, whatever the outcome. */
async function audited<T>(
  db: Db,
  entry: Omit<AuditEntry, 'actor' | 'outcome'>,
  work: () => Promise<T>,
  targetOf?: (result: T) => string | number,
): Promise<T> {
  try {
    const result = await work();
    await recordAudit(db, {
      ...entry,
      actor: CLI_ACTOR,
      outcome: 'ok',
      ...(targetOf ? { targetId: targetOf(result) } : {}),
    });
    return result;
  } catch (error) {
    const outcome =
      error instanceof ServiceError
        ? error.code === 'not_found'
          ? 'not_found'
          : error.code === 'invalid'
            ? 'invalid'
            : 'refused'
        : 'error';
    await recordAudit(db, {
      ...entry,
      actor: CLI_ACTOR,
      outcome,
      detail: { ...entry.detail, message: (error as Error).message },
    }).catch(() => undefined);
    throw error;
  }
}

function requireTemporal(config: Config): string {
  if (!config.temporal.address) {
    throw new UsageError(
      'Set TEMPORAL_ADDRESS (host:port of the Temporal frontend) or a TEMPORAL_PROFILE that has an address, or use ' +
        '`npm start` to run everything.',
    );
  }
  return config.temporal.address;
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      role: { type: 'string' },
      template: { type: 'string' },
      name: { type: 'string' },
      'expires-days': { type: 'string' },
      'dry-run': { type: 'boolean' },
      'keep-orphans': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, sub, arg] = positionals;
  if (values.help || !command) {
    process.stdout.write(USAGE);
    return;
  }
  const config = loadConfigOrExit();
  // Before anything is written: the embedded database, the secret and local runs are the owner's alone.
  keepDataPrivate(config.dataDir);

  switch (`${command}${sub && ['user', 'token'].includes(command) ? ` ${sub}` : ''}`) {
    case 'migrate': {
      await withDb(config, async () => undefined);
      console.log('Migrations applied.');
      return;
    }
    case 'reconcile': {
      const address = requireTemporal(config);
      const report = await withDb(config, async (db) => {
        const temporal = await connectTemporal(address, config.temporal.namespace, { settings: config.temporal });
        try {
          return await reconcileInstallation(
            { db, client: temporal.client },
            { dryRun: values['dry-run'] === true, keepOrphans: values['keep-orphans'] === true },
          );
        } finally {
          await temporal.connection.close();
        }
      });
      for (const line of reportLines(report)) console.log(line);
      if ([...report.restored, ...report.orphans].some((entry) => entry.outcome === 'failed')) process.exitCode = 1;
      return;
    }
    case 'web': {
      const address = requireTemporal(config);
      const booted = await bootDatabase(config, { applicationName: 'trainyard-web' });
      const temporal = await connectTemporal(address, config.temporal.namespace, { settings: config.temporal });
      const web = await startWebServer({
        config,
        db: booted.connected.database.db,
        sql: booted.connected.database.sql,
        secret: booted.secret,
        temporal,
        temporalUiUrl: config.temporal.uiUrl,
      });
      console.log(`Trainyard web: ${web.url}`);
      const stop = async () => {
        await web.app.close();
        await temporal.connection.close();
        await booted.connected.close();
        process.exit(0);
      };
      process.on('SIGINT', () => void stop());
      process.on('SIGTERM', () => void stop());
      return;
    }
    case 'worker': {
      const address = requireTemporal(config);
      const booted = await bootDatabase(config, { applicationName: 'trainyard-worker' });
      const workers = await startWorkers({
        db: booted.connected.database.db,
        sql: booted.connected.database.sql,
        temporalAddress: address,
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
      console.log(
        `Trainyard worker: polling the control queue and machines ${workers.machineIds().join(', ') || '(none yet)'}` +
          ` of installation ${workers.installation} (build ${workers.buildId}${workers.metricsAddress ? `, metrics on http://${workers.metricsAddress}/metrics` : ''})`,
      );
      const stop = async () => {
        await workers.shutdown();
        await booted.connected.close();
        process.exit(0);
      };
      process.on('SIGINT', () => void stop());
      process.on('SIGTERM', () => void stop());
      return;
    }
    case 'user add': {
      if (!sub || !arg) throw new UsageError('user add <login> --role <role> [--template <id>]');
      if (!values.role) throw new UsageError('user add needs --role (viewer, operator, admin or a custom role).');
      const password = await askPassword();
      const templateId = templateOption(values.template);
      await withDb(config, (db) =>
        audited(
          db,
          { action: 'user.create', targetType: 'user', targetId: arg, detail: { role: values.role, templateId } },
          () => createUser(db, { login: arg, password, role: values.role, templateId }),
        ),
      );
      console.log(
        `User ${arg} added with role ${values.role}${values.template ? ` for template ${values.template}` : ''}.`,
      );
      return;
    }
    case 'user set-password': {
      if (!arg) throw new UsageError('user set-password <login>');
      const password = await askPassword();
      await withDb(config, (db) =>
        audited(db, { action: 'user.set_password', targetType: 'user', targetId: arg }, () =>
          setPassword(db, arg, password),
        ),
      );
      console.log(`Password of ${arg} changed; their sessions were ended.`);
      return;
    }
    case 'user grant': {
      if (!arg || !values.role) throw new UsageError('user grant <login> --role <role> [--template <id>]');
      const templateId = templateOption(values.template);
      await withDb(config, (db) =>
        audited(
          db,
          { action: 'grant.create', targetType: 'user', targetId: arg, detail: { role: values.role, templateId } },
          () => grantRole(db, arg, values.role!, templateId),
        ),
      );
      console.log(`Granted ${values.role} to ${arg}${values.template ? ` for template ${values.template}` : ''}.`);
      return;
    }
    case 'token create': {
      if (!arg) throw new UsageError('token create <login> [--name N] [--expires-days D]');
      const expiresDays = values['expires-days'] === undefined ? undefined : Number(values['expires-days']);
      const created = await withDb(config, (db) =>
        audited(
          db,
          {
            action: 'token.create',
            targetType: 'token',
            detail: { login: arg, name: values.name ?? null, expiresDays: expiresDays ?? null },
          },
          () =>
            createToken(db, arg, {
              ...(values.name ? { name: values.name } : {}),
              ...(expiresDays !== undefined ? { expiresDays } : {}),
            }),
          (token) => token.id,
        ),
      );
      console.log(
        `Token ${created.id} "${created.name}" for ${arg}${created.expiresAt ? `, expires ${created.expiresAt.toISOString()}` : ''}. It is shown once:`,
      );
      console.log(created.token);
      return;
    }
    case 'token revoke': {
      const id = Number(arg);
      if (!Number.isInteger(id) || id <= 0) throw new UsageError('token revoke <id>');
      await withDb(config, (db) =>
        audited(db, { action: 'token.revoke', targetType: 'token', targetId: id }, () => revokeToken(db, id)),
      );
      console.log(`Token ${id} revoked.`);
      return;
    }
    default:
      throw new UsageError(`Unknown command "${positionals.join(' ')}".\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof ServiceError || error instanceof UsageError) {
    console.error(`trainyard: ${error.message}`);
    process.exit(error instanceof UsageError ? 64 : 1);
  }
  fail(error);
});
