// JSON schemas of the JSON API v1 (DESIGN §6): the routes validate and serialise with
// them, and /api/v1/openapi.json is generated from the very same objects. A schema
// registered with `component()` appears once under components.schemas and is
// referenced from every route that uses it.
import { STATUSES } from '../../../domain/status.js';
import { ALL_PERMISSIONS } from '../../../domain/permissions.js';
import { MACHINE_LIMITS } from '../../../services/machines.js';
import { TEMPLATE_LIMITS } from '../../../services/templates.js';

export type JsonSchema = Record<string, unknown>;

export const components = new Map<JsonSchema, string>();

function component<T extends JsonSchema>(name: string, schema: T): T {
  components.set(schema, name);
  return schema;
}

const MAX_ID = 2_147_483_647;
const id = { type: 'integer', minimum: 1, maximum: MAX_ID } as const;
const timestamp = { type: 'string', format: 'date-time' } as const;
const nullable = (schema: JsonSchema): JsonSchema => ({ ...schema, type: [schema.type as string, 'null'] });
/** A patch changes only what it names: no defaults filled in. */
const withoutDefaults = <T extends Record<string, JsonSchema>>(fields: T): T =>
  Object.fromEntries(Object.entries(fields).map(([key, { default: _default, ...rest }]) => [key, rest])) as T;

export const ErrorBody = component('Error', {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: { type: 'string', enum: ['invalid', 'unauthenticated', 'forbidden', 'not_found', 'not_allowed', 'conflict', 'unavailable', 'internal'] },
        message: { type: 'string' },
        field: { type: 'string', description: 'The input field at fault (400).' },
      },
    },
  },
});

/** The error answers every authenticated route may give. */
export const errors = (...codes: number[]): Record<string, JsonSchema> =>
  Object.fromEntries([400, 401, 403, ...codes].map((code) => [String(code), ErrorBody]));

export const IdParams = { type: 'object', required: ['id'], properties: { id } } as const;

export const Page = {
  limit: { type: 'integer', minimum: 1, maximum: 500, description: 'Page size (default 50).' },
  cursor: { ...id, description: 'nextCursor of the previous page.' },
} as const;

const envSchema = {
  type: 'object',
  maxProperties: TEMPLATE_LIMITS.envEntries,
  propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_]*$' },
  additionalProperties: { type: 'string' },
  description: 'Environment variables of the trainer; TRAINYARD_* names are reserved.',
} as const;

const secretEnvSchema = {
  type: 'object',
  maxProperties: TEMPLATE_LIMITS.envEntries,
  propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_]*$' },
  additionalProperties: { type: ['string', 'null'] },
  description:
    'Write-only secret environment variables (API keys, passwords): stored encrypted under TRAINYARD_SECRET, never returned (responses list their names in secretEnvKeys), given to the trainer only when a run launches. A name is either in env or here. On a patch a key given replaces, null removes, a key left out is kept.',
} as const;

const templateFields = {
  name: { type: 'string', minLength: 1, maxLength: TEMPLATE_LIMITS.name },
  description: { type: ['string', 'null'], maxLength: TEMPLATE_LIMITS.description },
  command: { type: 'string', minLength: 1, maxLength: TEMPLATE_LIMITS.commandBytes, description: "Run by /bin/sh in workingDir (else the run's own directory); at most 64 KiB." },
  workingDir: { type: ['string', 'null'], maxLength: TEMPLATE_LIMITS.workingDir, description: 'Where the command runs on the machine; the run directory when null.' },
  env: envSchema,
  secretEnv: secretEnvSchema,
  params: { type: 'object', additionalProperties: true, description: 'Hyperparameters with their defaults (at most 64 KiB of JSON); the trainer gets them as TRAINYARD_PARAMS.' },
  totalSteps: { type: ['integer', 'null'], minimum: 1, maximum: TEMPLATE_LIMITS.totalSteps },
  stopGraceSeconds: { type: 'integer', minimum: 0, maximum: TEMPLATE_LIMITS.stopGraceSeconds, default: 30 },
} as const;

export const TemplateCreate = component('TemplateCreate', {
  type: 'object',
  required: ['name', 'command'],
  additionalProperties: false,
  properties: templateFields,
});

export const TemplatePatch = component('TemplatePatch', {
  type: 'object',
  additionalProperties: false,
  properties: withoutDefaults(templateFields),
});

export const Template = component('Template', {
  type: 'object',
  required: ['id', 'name', 'description', 'command', 'workingDir', 'env', 'secretEnvKeys', 'params', 'totalSteps', 'stopGraceSeconds', 'createdAt', 'updatedAt'],
  properties: {
    id,
    name: { type: 'string' },
    description: { type: 'string' },
    command: { type: 'string' },
    workingDir: { type: ['string', 'null'] },
    env: { type: 'object', additionalProperties: { type: 'string' }, description: 'Values are shown as "••••" to callers without templates.manage.' },
    secretEnvKeys: { type: 'array', items: { type: 'string' }, description: 'Names of the secret env variables; their values are never returned.' },
    params: { type: 'object', additionalProperties: true },
    totalSteps: { type: ['integer', 'null'] },
    stopGraceSeconds: { type: 'integer' },
    createdAt: timestamp,
    updatedAt: timestamp,
  },
});

const machineFields = {
  name: { type: 'string', minLength: 1, maxLength: MACHINE_LIMITS.name },
  address: { type: 'string', minLength: 1, maxLength: MACHINE_LIMITS.address, description: '"host" or "host:port" (port 22 by default); IPv6 as "[addr]:port".' },
  sshUser: { type: 'string', minLength: 1, maxLength: 32 },
  privateKey: { type: ['string', 'null'], maxLength: MACHINE_LIMITS.privateKeyBytes, description: 'PEM/OpenSSH private key; stored encrypted, never returned.' },
  privateKeyPath: { type: ['string', 'null'], maxLength: MACHINE_LIMITS.privateKeyPath, description: 'A key file relative to TRAINYARD_KEYS_DIR.' },
  hostKeyFingerprint: { type: ['string', 'null'], maxLength: 100, pattern: '^SHA256:[A-Za-z0-9+/]{43}=?$', description: 'Pinned host key, as `ssh-keygen -lf` prints it.' },
  slots: { type: 'integer', minimum: 1, maximum: MACHINE_LIMITS.slots, default: 1 },
  gpus: { type: 'array', maxItems: MACHINE_LIMITS.gpus, items: { type: 'integer', minimum: 0, maximum: MACHINE_LIMITS.gpuIndex }, description: 'GPU indices, split across slots.' },
  lostTimeoutSeconds: { type: 'integer', minimum: MACHINE_LIMITS.lostTimeoutSeconds.min, maximum: MACHINE_LIMITS.lostTimeoutSeconds.max, default: 600 },
  enabled: { type: 'boolean', default: true },
} as const;

export const MachineCreate = component('MachineCreate', {
  type: 'object',
  required: ['name', 'address', 'sshUser'],
  additionalProperties: false,
  properties: machineFields,
});

export const MachinePatch = component('MachinePatch', {
  type: 'object',
  additionalProperties: false,
  properties: withoutDefaults(machineFields),
});

export const MachineProbe = component('MachineProbe', {
  type: 'object',
  required: ['reachable', 'probedAt'],
  properties: {
    reachable: { type: 'boolean' },
    hostKeyMatches: { type: 'boolean' },
    freeDiskBytes: { type: 'number' },
    gpus: { type: 'array', items: { type: 'object', properties: { index: { type: 'integer' }, name: { type: 'string' }, memoryMiB: { type: 'number' } } } },
    error: { type: 'string' },
    probedAt: timestamp,
  },
});

export const Machine = component('Machine', {
  type: 'object',
  required: ['id', 'name', 'kind', 'address', 'sshUser', 'hasPrivateKey', 'privateKeyPath', 'hostKeyFingerprint', 'slots', 'gpus', 'lostTimeoutSeconds', 'enabled', 'probe', 'probedAt', 'createdAt', 'updatedAt'],
  properties: {
    id,
    name: { type: 'string' },
    kind: { type: 'string', enum: ['local', 'ssh'] },
    address: { type: 'string' },
    sshUser: { type: ['string', 'null'] },
    hasPrivateKey: { type: 'boolean', description: 'Whether an encrypted key is stored (the key is never returned).' },
    privateKeyPath: { type: ['string', 'null'] },
    hostKeyFingerprint: { type: ['string', 'null'] },
    slots: { type: 'integer' },
    gpus: { type: 'array', items: { type: 'integer' } },
    lostTimeoutSeconds: { type: 'integer' },
    enabled: { type: 'boolean' },
    probe: { anyOf: [MachineProbe, { type: 'null' }] },
    probedAt: nullable(timestamp),
    createdAt: timestamp,
    updatedAt: timestamp,
  },
});

export const HostKeyRequest = component('HostKeyRequest', {
  type: 'object',
  required: ['address'],
  additionalProperties: false,
  properties: { address: machineFields.address },
});

export const HostKey = component('HostKey', {
  type: 'object',
  required: ['address', 'fingerprint', 'keyType'],
  properties: { address: { type: 'string' }, fingerprint: { type: 'string' }, keyType: { type: 'string' } },
});

export const Status = { type: 'string', enum: [...STATUSES] } as const;

export const ProcessCreate = component('ProcessCreate', {
  type: 'object',
  required: ['templateId', 'machineId'],
  additionalProperties: false,
  properties: {
    templateId: id,
    machineId: id,
    params: { type: 'object', additionalProperties: true, description: "Overrides of the template's params." },
  },
});

export const Process = component('Process', {
  type: 'object',
  required: ['id', 'templateId', 'machineId', 'status', 'enabled', 'progress', 'etaSeconds', 'startedAt', 'finishedAt', 'lastError'],
  properties: {
    id,
    templateId: id,
    templateName: { type: 'string' },
    machineId: id,
    machineName: { type: 'string' },
    status: Status,
    enabled: { type: 'boolean', description: 'status != disabled' },
    params: { type: 'object', additionalProperties: true },
    progress: {
      type: 'object',
      required: ['step', 'totalSteps'],
      properties: { step: { type: ['integer', 'null'] }, totalSteps: { type: ['integer', 'null'] } },
    },
    etaSeconds: { type: ['integer', 'null'], description: 'Estimated seconds left while active.' },
    startedAt: nullable(timestamp),
    finishedAt: nullable(timestamp),
    lastError: { type: ['string', 'null'] },
    runNumber: { type: ['integer', 'null'], description: 'The latest run, 1, 2, …' },
    machineUnreachableSince: nullable(timestamp),
    workflowId: { type: 'string' },
    createdAt: timestamp,
  },
});

export const ActionAccepted = component('ActionAccepted', {
  type: 'object',
  required: ['status'],
  properties: { status: { ...Status, description: 'The status right after the action was accepted, e.g. queued or stopping.' } },
});

export const Run = component('Run', {
  type: 'object',
  required: ['number', 'status'],
  properties: {
    number: { type: 'integer' },
    status: { type: 'string' },
    machineId: { type: 'integer' },
    params: { type: 'object', additionalProperties: true },
    step: { type: ['integer', 'null'] },
    totalSteps: { type: ['integer', 'null'] },
    exitCode: { type: ['integer', 'null'] },
    error: { type: ['string', 'null'] },
    malformedLines: { type: 'integer' },
    oversizedLines: { type: 'integer' },
    queuedAt: timestamp,
    startedAt: nullable(timestamp),
    finishedAt: nullable(timestamp),
  },
});

export const Logs = component('Logs', {
  type: 'object',
  required: ['run', 'stdout', 'stderr', 'events'],
  properties: {
    run: { type: 'integer' },
    stdout: { type: 'string', description: 'The last few KiB of the trainer’s stdout.' },
    stderr: { type: 'string' },
    events: {
      type: 'array',
      items: {
        type: 'object',
        properties: { at: timestamp, level: { type: 'string' }, message: { type: 'string' }, run: { type: ['integer', 'null'] } },
      },
    },
  },
});

/** The body of a metrics export: text, one point a line (see the route's description). */
export const ExportBody = { type: 'string', description: 'CSV or JSON lines, as the format asked for.' } as const satisfies JsonSchema;

export const NON_FINITE_NOTE =
  'JSON has no NaN or infinities, so a non-finite value is sent as the string "NaN", "Infinity" or "-Infinity"; every other value is a JSON number.';

export const MetricValue = component('MetricValue', {
  description: NON_FINITE_NOTE,
  anyOf: [{ type: 'number' }, { type: 'string', enum: ['NaN', 'Infinity', '-Infinity'] }],
});

export const Metrics = component('Metrics', {
  type: 'object',
  required: ['run', 'series'],
  properties: {
    run: { type: 'integer', description: 'The run the points belong to.' },
    series: {
      type: 'object',
      description: `Series name → [step, value] pairs in step order, at most maxPoints per series, spikes kept. ${NON_FINITE_NOTE}`,
      additionalProperties: {
        type: 'array',
        items: { type: 'array', items: [{ type: 'integer' }, MetricValue], additionalItems: false, minItems: 2 },
      },
    },
  },
});

export const list = (item: JsonSchema): JsonSchema => ({
  type: 'object',
  required: ['items', 'nextCursor'],
  properties: { items: { type: 'array', items: item }, nextCursor: { type: ['integer', 'null'], description: 'Pass as cursor for the next page; null on the last.' } },
});

export const PermissionName = { type: 'string', enum: ALL_PERMISSIONS } as const;
