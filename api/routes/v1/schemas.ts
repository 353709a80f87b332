// JSON schemas of the JSON API v1 (docs/design.md): the routes validate and serialise with
// them, and /api/v1/openapi.json is generated from the very same objects. What a request
// carries (path, query, body) is TypeBox, so a route's schema is also its type; bodies
// are the shared inputs of services/inputs.ts. A schema
// registered with `component()` appears once under components.schemas and is
// referenced from every route that uses it.
import { Type } from 'typebox';
import * as inputs from '../../../services/inputs.js';
import { STATUSES, type ProcessStatus } from '../../../domain/status.js';
import { ALL_PERMISSIONS } from '../../../domain/permissions.js';
import { FAILURE_CLASSES } from '../../../domain/restart.js';
import { NOTIFICATION_EVENTS, SIGNATURE_HEADER } from '../../../domain/notifications.js';
import { MAX_SEARCH, SORT_KEYS, type SortKey, type SortOrder } from '../../../services/process-list.js';

export type JsonSchema = Record<string, unknown>;

export const components = new Map<object, string>();

function component<T extends object>(name: string, schema: T): T {
  components.set(schema, name);
  return schema;
}

/** What the API answers: plain JSON Schema, typed loosely (handlers return service views). */
const output = (name: string, schema: JsonSchema): JsonSchema => component(name, schema);

const id = inputs.Id;
const timestamp = { type: 'string', format: 'date-time' } as const;
const nullable = (schema: JsonSchema): JsonSchema => ({ ...schema, type: [schema.type as string, 'null'] });

export const ErrorBody = output('Error', {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: {
          type: 'string',
          enum: [
            'invalid',
            'unauthenticated',
            'forbidden',
            'not_found',
            'not_allowed',
            'conflict',
            'unavailable',
            'internal',
          ],
        },
        message: { type: 'string' },
        field: { type: 'string', description: 'The input field at fault (400).' },
      },
    },
  },
});

/** The error answers every authenticated route may give. */
export const errors = (...codes: number[]): Record<string, JsonSchema> =>
  Object.fromEntries([400, 401, 403, ...codes].map((code) => [String(code), ErrorBody]));

export { IdParams } from '../params.js';

/** Query fields of a paginated list. */
export const Page = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, description: 'Page size (default 50).' })),
  cursor: Type.Optional(
    Type.Integer({ minimum: 1, maximum: inputs.MAX_ID, description: 'nextCursor of the previous page.' }),
  ),
};

/**
 * Query fields of a process list: Page's, with a cursor that is an id (sorted by `created`) or the opaque token the
 * other sorts hand out, and the sort, order and name search the pages offer.
 */
export const ProcessListQuery = {
  limit: Page.limit,
  cursor: Type.Optional(
    Type.Union(
      [
        Type.Integer({ minimum: 1, maximum: inputs.MAX_ID }),
        Type.String({ pattern: '^[A-Za-z0-9_-]{1,2000}$', maxLength: 2000 }),
      ],
      { description: 'nextCursor of the previous page (with the same sort and order).' },
    ),
  ),
  sort: Type.Optional(
    Type.Unsafe<SortKey>({
      type: 'string',
      enum: [...SORT_KEYS],
      description:
        'created (by id, the default), status (lifecycle order), machine (by name), progress (latest run), started ' +
        '(latest run); ties by id.',
    }),
  ),
  order: Type.Optional(
    Type.Unsafe<SortOrder>({ type: 'string', enum: ['asc', 'desc'], description: 'asc (the default) or desc.' }),
  ),
  q: Type.Optional(
    Type.String({
      maxLength: MAX_SEARCH,
      description: 'Part of the name, any case (% and _ are literal), or #id.',
    }),
  ),
};

export const TemplateCreate = component('TemplateCreate', inputs.TemplateCreate);
export const TemplatePatch = component('TemplatePatch', inputs.TemplatePatch);

export const Template = output('Template', {
  type: 'object',
  required: [
    'id',
    'name',
    'description',
    'command',
    'workingDir',
    'env',
    'secretEnvKeys',
    'params',
    'totalSteps',
    'stopGraceSeconds',
    'restart',
    'stallSeconds',
    'createdAt',
    'updatedAt',
  ],
  properties: {
    id,
    name: { type: 'string' },
    description: { type: 'string' },
    command: { type: 'string' },
    workingDir: { type: ['string', 'null'] },
    env: {
      type: 'object',
      additionalProperties: { type: 'string' },
      description: 'Values are shown as "••••" to callers without templates.manage.',
    },
    secretEnvKeys: {
      type: 'array',
      items: { type: 'string' },
      description: 'Names of the secret env variables; their values are never returned.',
    },
    params: { type: 'object', additionalProperties: true },
    totalSteps: { type: ['integer', 'null'] },
    stopGraceSeconds: { type: 'integer' },
    restart: {
      type: 'object',
      required: ['onFailure', 'backoffSeconds', 'onMachineLost', 'except'],
      properties: {
        onFailure: { type: 'integer' },
        backoffSeconds: { type: 'integer' },
        onMachineLost: { type: 'boolean' },
        except: { type: 'array', items: { type: 'string', enum: [...FAILURE_CLASSES] } },
      },
      description: 'What follows a failed run (defaults filled in; onFailure 0 never restarts).',
    },
    stallSeconds: { type: ['integer', 'null'], description: 'Silence (no metric line) that marks a run stalled.' },
    createdAt: timestamp,
    updatedAt: timestamp,
  },
});

export const MachineCreate = component('MachineCreate', inputs.MachineCreate);
export const MachinePatch = component('MachinePatch', inputs.MachinePatch);

export const MachineProbe = output('MachineProbe', {
  type: 'object',
  required: ['reachable', 'probedAt'],
  properties: {
    reachable: { type: 'boolean' },
    hostKeyMatches: { type: 'boolean' },
    freeDiskBytes: { type: 'number' },
    gpus: {
      type: 'array',
      items: {
        type: 'object',
        properties: { index: { type: 'integer' }, name: { type: 'string' }, memoryMiB: { type: 'number' } },
      },
    },
    error: { type: 'string' },
    probedAt: timestamp,
  },
});

export const Machine = output('Machine', {
  type: 'object',
  required: [
    'id',
    'name',
    'kind',
    'address',
    'sshUser',
    'hasPrivateKey',
    'privateKeyPath',
    'hostKeyFingerprint',
    'slots',
    'gpus',
    'lostTimeoutSeconds',
    'enabled',
    'probe',
    'probedAt',
    'createdAt',
    'updatedAt',
  ],
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

export const HostKeyRequest = component('HostKeyRequest', inputs.HostKeyRequest);
/** The machine whose fingerprint is being checked, when it exists: a worker serving it reads the key. */
export const HostKeyQuery = Type.Object({ machineId: Type.Optional(inputs.Id) });

export const HostKey = output('HostKey', {
  type: 'object',
  required: ['address', 'fingerprint', 'keyType'],
  properties: { address: { type: 'string' }, fingerprint: { type: 'string' }, keyType: { type: 'string' } },
});

export const Status = Type.Unsafe<ProcessStatus>({ type: 'string', enum: [...STATUSES] });

export const ProcessCreate = component('ProcessCreate', inputs.ProcessesCreate);
export const ProcessPatch = component('ProcessPatch', inputs.ProcessPatch);
export const SweepCreate = component('SweepCreate', inputs.SweepCreate);

export const Process = output('Process', {
  type: 'object',
  required: [
    'id',
    'name',
    'sweepId',
    'templateId',
    'machineId',
    'status',
    'enabled',
    'params',
    'progress',
    'etaSeconds',
    'startedAt',
    'finishedAt',
    'lastError',
    'attempt',
    'maxAttempts',
    'stalled',
  ],
  properties: {
    id,
    name: { type: 'string', description: "Given, or the template's name and the params that differ from its own." },
    sweepId: { type: ['integer', 'null'], description: 'The sweep that made the process, if one did.' },
    templateId: id,
    templateName: { type: 'string' },
    machineId: id,
    machineName: { type: 'string' },
    status: Status,
    enabled: { type: 'boolean', description: 'status != disabled' },
    params: {
      type: 'object',
      additionalProperties: true,
      description: "Effective: the template's params with the process's own over them.",
    },
    progress: {
      type: 'object',
      required: ['step', 'totalSteps'],
      properties: { step: { type: ['integer', 'null'] }, totalSteps: { type: ['integer', 'null'] } },
    },
    etaSeconds: { type: ['integer', 'null'], description: 'Estimated seconds left while active.' },
    startedAt: nullable(timestamp),
    finishedAt: nullable(timestamp),
    lastError: { type: ['string', 'null'] },
    attempt: {
      type: 'integer',
      description: "1-based within the current restart chain (a user's start begins a new chain).",
    },
    maxAttempts: { type: 'integer', description: "The template's restart.onFailure + 1." },
    stalled: { type: 'boolean', description: "The current run wrote no metric line for the template's stallSeconds." },
    runNumber: { type: ['integer', 'null'], description: 'The latest run, 1, 2, …' },
    machineUnreachableSince: nullable(timestamp),
    workflowId: { type: 'string' },
    createdAt: timestamp,
  },
});

export const ProcessItems = output('ProcessItems', {
  type: 'object',
  required: ['items'],
  properties: { items: { type: 'array', items: Process } },
});

export const Sweep = output('Sweep', {
  type: 'object',
  required: ['id', 'templateId', 'processes'],
  properties: { id, templateId: id, name: { type: 'string' }, processes: { type: 'array', items: Process } },
});

const metricValue = {
  type: ['number', 'string', 'null'],
  description: 'A number; NaN and infinities as the strings "NaN", "Infinity", "-Infinity"; null without points.',
};

export const SweepResults = output('SweepResults', {
  type: 'object',
  required: ['id', 'templateId', 'name', 'processes'],
  properties: {
    id,
    templateId: id,
    name: { type: 'string' },
    metric: { type: 'string' },
    differing: { type: 'array', items: { type: 'string' }, description: "Param keys that differ from the template's." },
    processes: {
      type: 'array',
      items: {
        allOf: [Process],
        type: 'object',
        properties: {
          final: {
            ...metricValue,
            description: `The value at the last step of the latest run. ${metricValue.description}`,
          },
          best: { ...metricValue, description: 'The highest finite value of the latest run (lowest for a loss).' },
        },
      },
    },
  },
});

export const ActionAccepted = output('ActionAccepted', {
  type: 'object',
  required: ['status'],
  properties: {
    status: { ...Status, description: 'The status right after the action was accepted, e.g. queued or stopping.' },
  },
});

export const Run = output('Run', {
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
    attempt: { type: 'integer', description: 'The attempt of its restart chain this run was (1-based).' },
    failureClass: {
      type: ['string', 'null'],
      enum: [...FAILURE_CLASSES, null],
      description: 'Why a failed run failed, as the restart policy classes it.',
    },
    stalled: { type: 'boolean', description: "No metric line for the template's stallSeconds (cleared by the next)." },
    malformedLines: { type: 'integer' },
    oversizedLines: { type: 'integer' },
    queuedAt: timestamp,
    startedAt: nullable(timestamp),
    finishedAt: nullable(timestamp),
  },
});

export const Logs = output('Logs', {
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
        properties: {
          at: timestamp,
          level: { type: 'string' },
          message: { type: 'string' },
          run: { type: ['integer', 'null'] },
        },
      },
    },
  },
});

/** The body of a metrics export: text, one point a line (see the route's description). */
export const ExportBody: JsonSchema = { type: 'string', description: 'CSV or JSON lines, as the format asked for.' };

/** A success without a body (204). */
export const NoContent: JsonSchema = { type: 'null' };

export const NON_FINITE_NOTE =
  'JSON has no NaN or infinities, so a non-finite value is sent as the string "NaN", "Infinity" or "-Infinity"; ' +
  'every other value is a JSON number.';

export const MetricValue = output('MetricValue', {
  description: NON_FINITE_NOTE,
  anyOf: [{ type: 'number' }, { type: 'string', enum: ['NaN', 'Infinity', '-Infinity'] }],
});

export const Metrics = output('Metrics', {
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

export const list = (item: JsonSchema, cursor: 'id' | 'token' = 'id'): JsonSchema => ({
  type: 'object',
  required: ['items', 'nextCursor'],
  properties: {
    items: { type: 'array', items: item },
    nextCursor:
      cursor === 'id'
        ? { type: ['integer', 'null'], description: 'Pass as cursor for the next page; null on the last.' }
        : {
            type: ['integer', 'string', 'null'],
            description:
              'Pass as cursor for the next page; null on the last. An id when sorted by created, else a token.',
          },
  },
});

export const PermissionName = { type: 'string', enum: ALL_PERMISSIONS } as const;

export const UserCreate = component('UserCreate', inputs.UserCreate);
export const UserPatch = component('UserPatch', inputs.UserPatch);

const userProperties = {
  id,
  login: { type: 'string' },
  name: { type: 'string', description: 'A display name; empty when none was given.' },
  active: { type: 'boolean', description: 'An inactive user can neither log in nor use a token.' },
  lastLoginAt: nullable(timestamp),
  roles: {
    type: 'array',
    items: {
      type: 'object',
      required: ['role', 'templateId'],
      properties: {
        role: { type: 'string' },
        templateId: { type: ['integer', 'null'], description: 'Null: held globally.' },
      },
    },
  },
  createdAt: timestamp,
  invite: {
    type: ['object', 'null'],
    description: 'An invite the user has not accepted yet (it may have expired); null when none waits.',
    required: ['expiresAt'],
    properties: { expiresAt: timestamp },
  },
};
const userRequired = ['id', 'login', 'name', 'active', 'lastLoginAt', 'roles', 'createdAt'];

const inviteUrlProperty = {
  type: 'string',
  format: 'uri',
  description:
    'The invite link (`<TRAINYARD_PUBLIC_URL or this request’s origin>/invite/<token>`), valid 7 days and single ' +
    'use; returned this once only.',
};

export const User = output('User', { type: 'object', required: userRequired, properties: userProperties });

export const UserCreated = output('UserCreated', {
  type: 'object',
  required: userRequired,
  properties: {
    ...userProperties,
    password: {
      type: 'string',
      description: 'The generated one-time password, when none was given; returned this once only.',
    },
    inviteUrl: { ...inviteUrlProperty, description: `With invite: true. ${inviteUrlProperty.description}` },
  },
});

export const InviteIssued = output('InviteIssued', {
  type: 'object',
  required: ['user', 'inviteUrl'],
  properties: { user: User, inviteUrl: inviteUrlProperty },
});

export const PasswordReset = output('PasswordReset', {
  type: 'object',
  required: ['user', 'password'],
  properties: {
    user: User,
    password: { type: 'string', description: 'The new one-time password; returned this once only.' },
  },
});

export const NotificationChannelCreate = component('NotificationChannelCreate', inputs.NotificationChannelCreate);

export const NotificationChannel = output('NotificationChannel', {
  type: 'object',
  required: ['id', 'name', 'kind'],
  properties: {
    id,
    name: { type: 'string' },
    kind: { type: 'string', enum: ['webhook', 'slack'] },
    url: { type: 'string', description: 'Only for holders of notifications.manage (a Slack URL is a credential).' },
    hasSecret: { type: 'boolean', description: 'Whether a signing secret is stored (it is never returned).' },
    createdAt: timestamp,
  },
});

export const SubscriptionCreate = component('SubscriptionCreate', inputs.SubscriptionCreate);

export const Subscription = output('Subscription', {
  type: 'object',
  required: [
    'id',
    'userId',
    'userLogin',
    'channelId',
    'channelName',
    'templateId',
    'templateName',
    'events',
    'createdAt',
  ],
  properties: {
    id,
    userId: id,
    userLogin: { type: 'string' },
    channelId: id,
    channelName: { type: 'string' },
    templateId: { type: ['integer', 'null'], description: 'null: every template.' },
    templateName: { type: ['string', 'null'] },
    events: { type: 'array', items: { type: 'string', enum: [...NOTIFICATION_EVENTS] } },
    createdAt: timestamp,
  },
});

export const Delivery = output('NotificationDelivery', {
  type: 'object',
  required: ['id', 'eventKey', 'event', 'processId', 'attempt', 'at', 'httpStatus', 'ok', 'error'],
  properties: {
    id: { type: 'integer' },
    eventKey: { type: 'string', description: 'The idempotency key: the `id` of the body the receiver got.' },
    event: { type: 'string' },
    processId: { type: ['integer', 'null'] },
    attempt: { type: 'integer', description: '1 for the first try of this event, then each retry.' },
    at: timestamp,
    httpStatus: { type: ['integer', 'null'], description: 'null when no answer came (refused, timed out).' },
    ok: { type: 'boolean' },
    error: { type: ['string', 'null'] },
  },
});

export const Announced = output('NotificationSent', {
  type: 'object',
  required: ['key'],
  properties: { key: { type: 'string', description: 'The test event’s idempotency key.' } },
});

/** What a webhook channel's receiver gets (the OpenAPI document's `webhooks`; the body of domain/notifications.ts). */
export const WebhookEvent = output('WebhookEvent', {
  type: 'object',
  required: ['id', 'event', 'at', 'process', 'run'],
  properties: {
    id: {
      type: 'string',
      description: 'The idempotency key: the same event always carries the same id; drop repeats by it.',
    },
    event: {
      type: 'string',
      enum: [...NOTIFICATION_EVENTS, 'test'],
      description:
        'completed / failed: a run ended (exit 0 / otherwise; a run that will be restarted fails first). ' +
        'stalled: no metric line for stallSeconds. restarted: the restart policy follows a failed run with a new ' +
        'one. non_finite_loss: the first NaN or ±Infinity of a loss series in a run. test: sent on request.',
    },
    at: timestamp,
    process: {
      type: ['object', 'null'],
      required: ['id', 'name', 'templateId', 'machineId', 'status', 'attempt', 'lastError'],
      properties: {
        id,
        name: { type: 'string' },
        templateId: id,
        machineId: id,
        status: { type: 'string' },
        attempt: {
          type: 'integer',
          description:
            'The attempt of the run the event is about (restarted, stalled: the run that failed or stalled).',
        },
        lastError: { type: ['string', 'null'] },
      },
      description: 'null for a test event.',
    },
    run: {
      type: ['object', 'null'],
      required: ['number', 'exitCode'],
      properties: { number: { type: 'integer' }, exitCode: { type: ['integer', 'null'] } },
      description: 'The run the event is about; null for a test event.',
    },
    metric: {
      type: 'object',
      required: ['name', 'step', 'value'],
      properties: {
        name: { type: 'string' },
        step: { type: 'integer' },
        value: { type: 'string', enum: ['NaN', 'Infinity', '-Infinity'] },
      },
      description: 'non_finite_loss only: where the loss went non-finite.',
    },
  },
});

export const WEBHOOK_SIGNATURE = {
  name: SIGNATURE_HEADER,
  in: 'header',
  required: true,
  schema: { type: 'string', pattern: '^sha256=[0-9a-f]{64}$' },
  description: "sha256=<hex HMAC-SHA256 of the raw body under the channel's secret>; verify it before parsing.",
} as const;
