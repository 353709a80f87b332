// Target machines (DESIGN §1, §6): where training runs. Private keys are stored only
// encrypted (lib/keybox.ts) or referenced by a path under TRAINYARD_KEYS_DIR, and no
// read ever returns a key. The built-in `local` machine keeps its name and cannot go.
import crypto from 'node:crypto';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { TimeoutFailure, TimeoutType } from '@temporalio/common';
import { asc, eq, sql } from 'drizzle-orm';
import type { MachineProbe } from '../activities/types.js';
import { parseAddress } from '../executors/factory.js';
import { parseFingerprint } from '../executors/index.js';
import type { Db } from '../db/client.js';
import { machines, processes } from '../db/schema.js';
import { encryptSecret, KeyboxError, readKeyFile } from '../lib/keybox.js';
import { controlTaskQueue, probeMachineWorkflowId } from '../workflows/messages.js';
import { installationOf } from './installation.js';
import type { probeMachineWorkflow } from '../workflows/probe-machine.js';
import { invalid, notFound, ServiceError, THINGS } from './errors.js';
import { LOCAL_MACHINE_NAME } from './seed.js';
import { usedBy } from './templates.js';
import { MACHINE_LIMITS, type MachineInput, type MachinePatchInput } from './inputs.js';
import { boolean, integer, isPlainObject, pgCode, rejectUnknown, text } from './validate.js';

export interface MachineDeps {
  db: Db;
  /** TRAINYARD_SECRET: the key under which private keys are stored. */
  secret: string;
  keysDir: string | null;
}

export { MACHINE_LIMITS, type MachineInput, type MachinePatchInput } from './inputs.js';

export interface MachineView {
  id: number;
  name: string;
  kind: 'local' | 'ssh';
  address: string;
  sshUser: string | null;
  /** Whether an (encrypted) private key is stored; the key itself is never returned. */
  hasPrivateKey: boolean;
  privateKeyPath: string | null;
  hostKeyFingerprint: string | null;
  slots: number;
  gpus: number[];
  lostTimeoutSeconds: number;
  enabled: boolean;
  probe: MachineProbe | null;
  probedAt: string | null;
  createdAt: string;
  updatedAt: string;
}

/** Every field a machine's input may hold (the API's body, the page's form). */
export const MACHINE_FIELDS = [
  'name',
  'address',
  'sshUser',
  'privateKey',
  'privateKeyPath',
  'hostKeyFingerprint',
  'slots',
  'gpus',
  'lostTimeoutSeconds',
  'enabled',
] as const;
/** What the built-in machine lets anyone change: it has no address, user or key. */
const LOCAL_FIELDS: ReadonlySet<string> = new Set(['slots', 'gpus', 'lostTimeoutSeconds', 'enabled']);

// A hostname, an IPv4 address, or a bracketed IPv6 one, with an optional port: no
// characters a shell, an SSH option or a URL would treat specially.
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;
const SSH_USER = /^[A-Za-z_][A-Za-z0-9._-]{0,31}$/;
const PEM = /^-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\r?\n[\s\S]+\r?\n-----END [A-Z0-9 ]*PRIVATE KEY-----\s*$/;

type Row = typeof machines.$inferSelect;

function toView(row: Row): MachineView {
  return {
    id: row.id,
    name: row.name,
    kind: row.kind === 'local' ? 'local' : 'ssh',
    address: row.address,
    sshUser: row.sshUser,
    hasPrivateKey: row.privateKeyEncrypted !== null,
    privateKeyPath: row.privateKeyPath,
    hostKeyFingerprint: row.hostKeyFingerprint,
    slots: row.slots,
    gpus: row.gpus,
    lostTimeoutSeconds: row.lostTimeoutSeconds,
    enabled: row.enabled,
    probe: (row.probe as MachineProbe | null) ?? null,
    probedAt: row.probedAt ? row.probedAt.toISOString() : null,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

export function validAddress(value: unknown): string {
  const address = text('address', typeof value === 'string' ? value.trim() : value, {
    min: 1,
    max: MACHINE_LIMITS.address,
  });
  if (!HOST.test(address)) throw invalid('address', notAnAddress(address));
  try {
    parseAddress(address);
  } catch (error) {
    throw invalid('address', notAnAddress(address));
  }
  return address;
}

export function validFingerprint(value: unknown): string | null {
  if (value === null || value === '') return null;
  const fingerprint = text('hostKeyFingerprint', value, { max: 100 }).trim();
  try {
    parseFingerprint(fingerprint);
  } catch {
    throw invalid('hostKeyFingerprint', {
      en: 'hostKeyFingerprint is "SHA256:" and 43 base64 characters, as ssh-keygen -lf prints.',
      ru: 'Отпечаток ключа: «SHA256:» и 43 символа base64, как печатает ssh-keygen -lf.',
    });
  }
  return fingerprint.replace(/=$/, '');
}

function validGpus(value: unknown): number[] {
  if (!Array.isArray(value))
    throw invalid('gpus', {
      en: 'gpus is a list of GPU indices, e.g. [0, 1].',
      ru: 'GPU: список номеров, например [0, 1].',
    });
  if (value.length > MACHINE_LIMITS.gpus)
    throw invalid('gpus', {
      en: `gpus may list at most ${MACHINE_LIMITS.gpus} GPUs.`,
      ru: `GPU: не больше ${MACHINE_LIMITS.gpus}.`,
    });
  const gpus = value.map((item, i) => integer(`gpus.${i}`, item, 0, MACHINE_LIMITS.gpuIndex));
  if (new Set(gpus).size !== gpus.length)
    throw invalid('gpus', { en: 'gpus lists a GPU twice.', ru: 'GPU: номер указан дважды.' });
  return gpus;
}

function validPrivateKey(value: unknown): string {
  const key = text('privateKey', value, { min: 1, max: MACHINE_LIMITS.privateKeyBytes, bytes: true, multiline: true });
  if (!PEM.test(key.trim() + '\n'))
    throw invalid('privateKey', {
      en: 'privateKey is a PEM or OpenSSH private key ("-----BEGIN … PRIVATE KEY-----").',
      ru: 'Закрытый ключ: PEM или OpenSSH («-----BEGIN … PRIVATE KEY-----»).',
    });
  return key.trim() + '\n';
}

function validKeyPath(value: unknown, keysDir: string | null): string {
  const relative = text('privateKeyPath', value, { min: 1, max: MACHINE_LIMITS.privateKeyPath });
  if (relative.startsWith('/') || relative.startsWith('\\'))
    throw invalid('privateKeyPath', {
      en: 'privateKeyPath is relative to TRAINYARD_KEYS_DIR.',
      ru: 'Путь к ключу — относительно TRAINYARD_KEYS_DIR.',
    });
  try {
    readKeyFile(keysDir, relative);
  } catch (error) {
    if (error instanceof KeyboxError)
      throw invalid('privateKeyPath', {
        en: error.message,
        ru: `Файл ключа ${relative} не найден или не читается в TRAINYARD_KEYS_DIR.`,
      });
    throw invalid('privateKeyPath', {
      en: `The key file ${relative} cannot be read.`,
      ru: `Файл ключа ${relative} не читается.`,
    });
  }
  return relative;
}

/** Checks a full body (create) or the fields present (patch); returns only what to write. */
export function validateMachine(
  deps: Pick<MachineDeps, 'secret' | 'keysDir'>,
  body: unknown,
  mode: 'create' | 'patch',
  existing?: Row,
): Partial<typeof machines.$inferInsert> {
  if (!isPlainObject(body))
    throw invalid('body', { en: 'A machine is a JSON object.', ru: 'Машина — это JSON-объект.' });
  rejectUnknown(body, MACHINE_FIELDS);
  const has = (key: (typeof MACHINE_FIELDS)[number]) =>
    Object.prototype.hasOwnProperty.call(body, key) && body[key] !== undefined;
  const out: Partial<typeof machines.$inferInsert> = {};
  if (existing?.kind === 'local') {
    for (const key of Object.keys(body)) {
      if (body[key] !== undefined && !LOCAL_FIELDS.has(key)) {
        throw invalid(key, {
          en: `The built-in ${LOCAL_MACHINE_NAME} machine keeps its ${key}; only slots, gpus, lostTimeoutSeconds and enabled change.`,
          ru: `У встроенной машины «${LOCAL_MACHINE_NAME}» поле ${key} не меняется; меняются только slots, gpus, lostTimeoutSeconds и enabled.`,
        });
      }
    }
  }
  if (mode === 'create') {
    for (const key of ['name', 'address', 'sshUser'] as const)
      if (!has(key)) throw invalid(key, { en: `${key} is required.`, ru: `${key}: обязательное поле.` });
    if (!has('privateKey') && !has('privateKeyPath')) {
      throw invalid('privateKey', {
        en: 'Give the SSH private key (privateKey) or its file under TRAINYARD_KEYS_DIR (privateKeyPath).',
        ru: 'Укажите закрытый ключ SSH или путь к его файлу в TRAINYARD_KEYS_DIR.',
      });
    }
  }
  if (has('privateKey') && has('privateKeyPath') && body.privateKey !== null && body.privateKeyPath !== null) {
    throw invalid('privateKeyPath', {
      en: 'Give privateKey or privateKeyPath, not both.',
      ru: 'Укажите либо ключ, либо путь к файлу ключа, не то и другое.',
    });
  }
  if (has('name')) {
    const name = text('name', typeof body.name === 'string' ? body.name.trim() : body.name, {
      min: 1,
      max: MACHINE_LIMITS.name,
    });
    if (name === LOCAL_MACHINE_NAME)
      throw invalid('name', {
        en: `"${LOCAL_MACHINE_NAME}" is the built-in machine's name.`,
        ru: `«${LOCAL_MACHINE_NAME}» — имя встроенной машины.`,
      });
    out.name = name;
  }
  if (has('address')) out.address = validAddress(body.address);
  if (has('sshUser')) {
    const user = text('sshUser', body.sshUser, { min: 1, max: 32 });
    if (!SSH_USER.test(user))
      throw invalid('sshUser', {
        en: 'sshUser is a login name: letters, digits, ".", "_" or "-", starting with a letter or "_".',
        ru: 'Пользователь SSH: буквы, цифры, «.», «_» или «-», в начале буква или «_».',
      });
    out.sshUser = user;
  }
  // One key source at a time: setting one clears the other.
  if (has('privateKey')) {
    if (body.privateKey === null) out.privateKeyEncrypted = null;
    else {
      out.privateKeyEncrypted = encryptSecret(deps.secret, validPrivateKey(body.privateKey));
      out.privateKeyPath = null;
    }
  }
  if (has('privateKeyPath')) {
    if (body.privateKeyPath === null) out.privateKeyPath = null;
    else {
      out.privateKeyPath = validKeyPath(body.privateKeyPath, deps.keysDir);
      out.privateKeyEncrypted = null;
    }
  }
  if (has('hostKeyFingerprint')) out.hostKeyFingerprint = validFingerprint(body.hostKeyFingerprint);
  if (has('slots')) out.slots = integer('slots', body.slots, 1, MACHINE_LIMITS.slots);
  if (has('gpus')) out.gpus = validGpus(body.gpus);
  if (has('lostTimeoutSeconds')) {
    out.lostTimeoutSeconds = integer(
      'lostTimeoutSeconds',
      body.lostTimeoutSeconds,
      MACHINE_LIMITS.lostTimeoutSeconds.min,
      MACHINE_LIMITS.lostTimeoutSeconds.max,
    );
  }
  if (has('enabled')) out.enabled = boolean('enabled', body.enabled);
  if (mode === 'patch' && existing && existing.kind !== 'local') {
    const keyAfter = 'privateKeyEncrypted' in out ? out.privateKeyEncrypted : existing.privateKeyEncrypted;
    const pathAfter = 'privateKeyPath' in out ? out.privateKeyPath : existing.privateKeyPath;
    if (!keyAfter && !pathAfter)
      throw invalid('privateKey', {
        en: 'An SSH machine needs a private key or a privateKeyPath.',
        ru: 'Машине SSH нужен закрытый ключ или путь к файлу ключа.',
      });
  }
  return out;
}

const nameTaken = (name: string) =>
  new ServiceError(
    'conflict',
    { en: `A machine named "${name}" already exists.`, ru: `Машина с именем «${name}» уже есть.` },
    'name',
  );

const notAnAddress = (address: string) => ({
  en: `"${address}" is not an address: use host or host:port.`,
  ru: `«${address}» — не адрес: укажите host или host:port.`,
});

async function rowOf(db: Db, id: number): Promise<Row> {
  const [row] = await db.select().from(machines).where(eq(machines.id, id));
  if (!row) throw notFound(THINGS.machine, id);
  return row;
}

export async function createMachine(
  deps: MachineDeps,
  input: MachineInput | Record<string, unknown>,
): Promise<MachineView> {
  const values = { ...validateMachine(deps, input, 'create'), kind: 'ssh' } as typeof machines.$inferInsert;
  const [row] = await deps.db
    .insert(machines)
    .values(values)
    .onConflictDoNothing({ target: machines.name })
    .returning();
  if (!row) throw nameTaken(values.name);
  return toView(row);
}

export async function getMachine(db: Db, id: number): Promise<MachineView> {
  return toView(await rowOf(db, id));
}

export async function listMachines(db: Db): Promise<MachineView[]> {
  const rows = await db.select().from(machines).orderBy(asc(machines.id));
  return rows.map(toView);
}

/** Workers pick up the change on their next reconcile (a new executor when settings differ). */
export async function updateMachine(
  deps: MachineDeps,
  id: number,
  patch: MachinePatchInput | Record<string, unknown>,
): Promise<MachineView> {
  const existing = await rowOf(deps.db, id);
  const values = validateMachine(deps, patch, 'patch', existing);
  if (Object.keys(values).length === 0) return toView(existing);
  try {
    const [row] = await deps.db
      .update(machines)
      .set({ ...values, updatedAt: new Date() })
      .where(eq(machines.id, id))
      .returning();
    if (!row) throw notFound(THINGS.machine, id);
    return toView(row);
  } catch (error) {
    if (pgCode(error) === '23505') throw nameTaken(values.name ?? '');
    throw error;
  }
}

export async function countMachineProcesses(db: Db, id: number): Promise<number> {
  const [row] = await db
    .select({ n: sql<number>`count(*)::int` })
    .from(processes)
    .where(eq(processes.machineId, id));
  return row?.n ?? 0;
}

export async function deleteMachine(db: Db, id: number): Promise<void> {
  const existing = await rowOf(db, id);
  if (existing.kind === 'local')
    throw new ServiceError('conflict', {
      en: `The built-in ${LOCAL_MACHINE_NAME} machine cannot be deleted; disable it instead.`,
      ru: `Встроенную машину «${LOCAL_MACHINE_NAME}» нельзя удалить; её можно выключить.`,
    });
  const inUse = await countMachineProcesses(db, id);
  if (inUse > 0) throw usedBy(THINGS.machine, id, inUse);
  try {
    await db.delete(machines).where(eq(machines.id, id));
  } catch (error) {
    if (pgCode(error) === '23503') throw usedBy(THINGS.machine, id, await countMachineProcesses(db, id));
    throw error;
  }
}

/**
 * Probes the machine where its executor lives (a worker polling its queue) and stores
 * the result. A machine no worker serves answers `unavailable` within the workflow's
 * schedule-to-start timeout instead of hanging.
 */
export async function probeMachine(deps: { db: Db; client: Client }, id: number): Promise<MachineProbe> {
  const machine = await rowOf(deps.db, id);
  if (!machine.enabled)
    throw new ServiceError('not_allowed', {
      en: `Machine "${machine.name}" is disabled; no worker serves it. Enable it to probe it.`,
      ru: `Машина «${machine.name}» выключена, её не обслуживает ни один воркер. Включите её, чтобы проверить.`,
    });
  const installation = await installationOf(deps.db);
  try {
    return await deps.client.workflow.execute<typeof probeMachineWorkflow>('probeMachineWorkflow', {
      taskQueue: controlTaskQueue(installation),
      workflowId: probeMachineWorkflowId(installation, id, crypto.randomBytes(6).toString('hex')),
      args: [id, installation],
      workflowExecutionTimeout: '2 minutes',
    });
  } catch (error) {
    if (error instanceof WorkflowFailedError) {
      let cause: unknown = error.cause;
      while (cause && !(cause instanceof TimeoutFailure)) cause = (cause as { cause?: unknown }).cause;
      if (cause instanceof TimeoutFailure && cause.timeoutType === TimeoutType.SCHEDULE_TO_START) {
        throw new ServiceError(
          'unavailable',
          machine.kind === 'local'
            ? {
                en: `No worker serves the ${LOCAL_MACHINE_NAME} machine: start one with TRAINYARD_LOCAL_MACHINE=true (npm start does).`,
                ru: `Машину «${LOCAL_MACHINE_NAME}» не обслуживает ни один воркер: запустите его с TRAINYARD_LOCAL_MACHINE=true (так делает npm start).`,
              }
            : {
                en: `No worker serves machine "${machine.name}": start a worker (npm run trainyard -- worker) that can reach it.`,
                ru: `Машину «${machine.name}» не обслуживает ни один воркер: запустите воркер (npm run trainyard -- worker), которому она доступна.`,
              },
        );
      }
      throw new ServiceError('unavailable', {
        en: `Probing machine "${machine.name}" failed: ${error.cause?.message ?? error.message}`,
        ru: `Проверка машины «${machine.name}» не удалась: ${error.cause?.message ?? error.message}`,
      });
    }
    throw new ServiceError('unavailable', {
      en: `Could not run the probe of machine "${machine.name}": ${(error as Error).message}`,
      ru: `Не удалось запустить проверку машины «${machine.name}»: ${(error as Error).message}`,
    });
  }
}

/** Every machine to run a process on, by name: what the add-process form offers. */
export async function listMachineChoices(
  db: Db,
): Promise<Array<{ id: number; name: string; address: string; enabled: boolean }>> {
  return db
    .select({ id: machines.id, name: machines.name, address: machines.address, enabled: machines.enabled })
    .from(machines)
    .orderBy(asc(machines.name));
}
