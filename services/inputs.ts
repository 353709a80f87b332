// What a caller may send to create or change a template, a machine or a process: one
// TypeBox schema each, whose Static type is the services' input type. It sits beside the
// services (not in api/) because three parts read it: the JSON API validates bodies with
// it and publishes it in the OpenAPI document, the services take its type, and the CLI
// can build the same inputs. Not in domain/: that folder is held to the workflow's
// determinism rules, which allow no package but Temporal's. The services still check
// every value themselves (forms and the CLI reach them without a schema); the limits
// below are the ones they enforce.
import { Type, type Static, type TSchema } from 'typebox';
import { FAILURE_CLASSES, RESTART_LIMITS } from '../domain/restart.js';

export const TEMPLATE_LIMITS = {
  name: 200,
  description: 10_000,
  commandBytes: 64 * 1024,
  workingDir: 4096,
  envEntries: 200,
  envValueBytes: 32 * 1024,
  paramsBytes: 64 * 1024,
  stopGraceSeconds: 3600,
  totalSteps: 2_147_483_647,
} as const;

export const MACHINE_LIMITS = {
  name: 200,
  address: 255,
  privateKeyBytes: 16 * 1024,
  privateKeyPath: 1024,
  slots: 64,
  gpus: 64,
  gpuIndex: 1023,
  lostTimeoutSeconds: { min: 10, max: 7 * 86_400 },
} as const;

/** PostgreSQL's int4: every id, and every step count. */
export const MAX_ID = 2_147_483_647;

export const Id = Type.Integer({ minimum: 1, maximum: MAX_ID });

/** `{type: [t, 'null']}` as JSON Schema spells it (not an anyOf), typed as T | null. */
function orNull<T extends TSchema>(schema: T) {
  const { type, ...rest } = schema as unknown as { type: string };
  return Type.Unsafe<Static<T> | null>({ ...rest, type: [type, 'null'] });
}

/** A patch changes only what it names: every field optional, no defaults filled in. */
function patchOf<T extends Record<string, TSchema>>(fields: T) {
  const optional = Object.fromEntries(
    Object.entries(fields).map(([key, schema]) => {
      const { default: _default, ...rest } = schema as unknown as Record<string, unknown>;
      return [key, Type.Optional(Type.Unsafe<Static<typeof schema>>(rest))];
    }),
  ) as { [K in keyof T]: ReturnType<typeof Type.Optional<ReturnType<typeof Type.Unsafe<Static<T[K]>>>>> };
  return Type.Object(optional, { additionalProperties: false });
}

/** A JSON object of hyperparameters; the services bound its size and contents. */
export const Params = (description: string) =>
  Type.Unsafe<Record<string, unknown>>({ type: 'object', additionalProperties: true, description });

const envOf = <V extends TSchema>(values: V, description: string) =>
  Type.Unsafe<Record<string, Static<V>>>({
    type: 'object',
    maxProperties: TEMPLATE_LIMITS.envEntries,
    propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_]*$' },
    additionalProperties: values,
    description,
  });

const templateFields = {
  name: Type.String({ minLength: 1, maxLength: TEMPLATE_LIMITS.name }),
  description: orNull(Type.String({ maxLength: TEMPLATE_LIMITS.description })),
  command: Type.String({
    minLength: 1,
    maxLength: TEMPLATE_LIMITS.commandBytes,
    description: "Run by /bin/sh in workingDir (else the run's own directory); at most 64 KiB.",
  }),
  workingDir: orNull(
    Type.String({
      maxLength: TEMPLATE_LIMITS.workingDir,
      description: 'Where the command runs on the machine; the run directory when null.',
    }),
  ),
  env: envOf(Type.String(), 'Environment variables of the trainer; TRAINYARD_* names are reserved.'),
  secretEnv: envOf(
    Type.Unsafe<string | null>({ type: ['string', 'null'] }),
    'Write-only secret environment variables (API keys, passwords): stored encrypted under TRAINYARD_SECRET, never ' +
      'returned (responses list their names in secretEnvKeys), given to the trainer only when a run launches. A name ' +
      'is either in env or here. On a patch a key given replaces, null removes, a key left out is kept.',
  ),
  params: Params(
    'Hyperparameters with their defaults (at most 64 KiB of JSON); the trainer gets them as TRAINYARD_PARAMS.',
  ),
  totalSteps: orNull(Type.Integer({ minimum: 1, maximum: TEMPLATE_LIMITS.totalSteps })),
  stopGraceSeconds: Type.Integer({ minimum: 0, maximum: TEMPLATE_LIMITS.stopGraceSeconds, default: 30 }),
  restart: orNull(
    Type.Object(
      {
        onFailure: Type.Optional(
          Type.Integer({
            minimum: 0,
            maximum: RESTART_LIMITS.onFailure,
            default: 0,
            description: 'How many times a failed run is followed by a new one (0: never).',
          }),
        ),
        backoffSeconds: Type.Optional(
          Type.Integer({
            minimum: 0,
            maximum: RESTART_LIMITS.backoffSeconds,
            default: 30,
            description: 'The wait before each new run; a stop, disable or delete cancels it.',
          }),
        ),
        onMachineLost: Type.Optional(
          Type.Boolean({ default: false, description: 'Restart a run whose machine was lost past its timeout.' }),
        ),
        except: Type.Optional(
          Type.Array(Type.Union(FAILURE_CLASSES.map((c) => Type.Literal(c))), {
            maxItems: FAILURE_CLASSES.length,
            description:
              'Failure classes never restarted: exit_code (non-zero exit), oom (exit 137 or an out-of-memory message ' +
              'in stderr), machine_lost, launch_failed, stalled.',
          }),
        ),
      },
      {
        additionalProperties: false,
        description:
          'What follows a failed run: a new run of the same process after backoffSeconds, up to onFailure times, ' +
          "with TRAINYARD_PREVIOUS_RUN_DIR = the failed run's directory. null: never restart.",
      },
    ),
  ),
  stallSeconds: orNull(
    Type.Integer({
      minimum: RESTART_LIMITS.stallSeconds.min,
      maximum: RESTART_LIMITS.stallSeconds.max,
      description:
        'A run that writes no metric line for this long is marked stalled; when the restart policy restarts the ' +
        'stalled class, it is stopped and restarted. null: never.',
    }),
  ),
};

export const TemplateCreate = Type.Object(
  {
    name: templateFields.name,
    command: templateFields.command,
    description: Type.Optional(templateFields.description),
    workingDir: Type.Optional(templateFields.workingDir),
    env: Type.Optional(templateFields.env),
    secretEnv: Type.Optional(templateFields.secretEnv),
    params: Type.Optional(templateFields.params),
    totalSteps: Type.Optional(templateFields.totalSteps),
    stopGraceSeconds: Type.Optional(templateFields.stopGraceSeconds),
    restart: Type.Optional(templateFields.restart),
    stallSeconds: Type.Optional(templateFields.stallSeconds),
  },
  { additionalProperties: false },
);
export type TemplateInput = Static<typeof TemplateCreate>;

export const TemplatePatch = patchOf(templateFields);
export type TemplatePatchInput = Static<typeof TemplatePatch>;

const machineFields = {
  name: Type.String({ minLength: 1, maxLength: MACHINE_LIMITS.name }),
  address: Type.String({
    minLength: 1,
    maxLength: MACHINE_LIMITS.address,
    description: '"host" or "host:port" (port 22 by default); IPv6 as "[addr]:port".',
  }),
  sshUser: Type.String({ minLength: 1, maxLength: 32 }),
  privateKey: orNull(
    Type.String({
      maxLength: MACHINE_LIMITS.privateKeyBytes,
      description: 'PEM/OpenSSH private key; stored encrypted, never returned.',
    }),
  ),
  privateKeyPath: orNull(
    Type.String({
      maxLength: MACHINE_LIMITS.privateKeyPath,
      description: 'A key file relative to TRAINYARD_KEYS_DIR.',
    }),
  ),
  hostKeyFingerprint: orNull(
    Type.String({
      maxLength: 100,
      pattern: '^SHA256:[A-Za-z0-9+/]{43}=?$',
      description: 'Pinned host key, as `ssh-keygen -lf` prints it.',
    }),
  ),
  slots: Type.Integer({ minimum: 1, maximum: MACHINE_LIMITS.slots, default: 1 }),
  gpus: Type.Array(Type.Integer({ minimum: 0, maximum: MACHINE_LIMITS.gpuIndex }), {
    maxItems: MACHINE_LIMITS.gpus,
    description: 'GPU indices, split across slots.',
  }),
  lostTimeoutSeconds: Type.Integer({
    minimum: MACHINE_LIMITS.lostTimeoutSeconds.min,
    maximum: MACHINE_LIMITS.lostTimeoutSeconds.max,
    default: 600,
  }),
  enabled: Type.Boolean({ default: true }),
};

export const MachineCreate = Type.Object(
  {
    name: machineFields.name,
    address: machineFields.address,
    sshUser: machineFields.sshUser,
    privateKey: Type.Optional(machineFields.privateKey),
    privateKeyPath: Type.Optional(machineFields.privateKeyPath),
    hostKeyFingerprint: Type.Optional(machineFields.hostKeyFingerprint),
    slots: Type.Optional(machineFields.slots),
    gpus: Type.Optional(machineFields.gpus),
    lostTimeoutSeconds: Type.Optional(machineFields.lostTimeoutSeconds),
    enabled: Type.Optional(machineFields.enabled),
  },
  { additionalProperties: false },
);
export type MachineInput = Static<typeof MachineCreate>;

export const MachinePatch = patchOf(machineFields);
export type MachinePatchInput = Static<typeof MachinePatch>;

export const HostKeyRequest = Type.Object({ address: machineFields.address }, { additionalProperties: false });

export const PROCESS_LIMITS = {
  name: 200,
  /** Processes one request may make (a multi-create or a sweep). */
  perRequest: 500,
  machineIds: 100,
} as const;

const processName = Type.String({
  maxLength: PROCESS_LIMITS.name,
  description: "The process's name; the template's name and the params that differ from its own when empty.",
});
const machineIds = Type.Array(Id, {
  minItems: 1,
  maxItems: PROCESS_LIMITS.machineIds,
  description: 'Target machines; processes are spread over them round robin.',
});
// No `default`s here: the single form refuses these fields, and a filled-in default would be "sent".
const startNow = Type.Boolean({
  description: 'Start every process once made (false): they queue for slots and run as slots free.',
});

/** One process on one machine. */
export const ProcessCreate = Type.Object(
  {
    templateId: Id,
    machineId: Id,
    params: Type.Optional(Params("Overrides of the template's params.")),
  },
  { additionalProperties: false },
);
export type ProcessInput = Static<typeof ProcessCreate>;

/** What POST /processes takes: the single form above, or several machines (machineIds) at once. */
export const ProcessesCreate = Type.Object(
  {
    templateId: Id,
    machineId: Type.Optional(Id),
    machineIds: Type.Optional(machineIds),
    perMachine: Type.Optional(
      Type.Integer({ minimum: 1, maximum: PROCESS_LIMITS.perRequest, description: 'Processes per machine (1).' }),
    ),
    params: Type.Optional(Params("Overrides of the template's params.")),
    name: Type.Optional(processName),
    start: Type.Optional(startNow),
  },
  {
    additionalProperties: false,
    description:
      'Either machineId (one process; answered with the process) or machineIds (answered with {items}); ' +
      'name, perMachine and start go with machineIds.',
  },
);
export type ProcessesInput = Static<typeof ProcessesCreate>;

export const ProcessPatch = Type.Object({ name: processName }, { additionalProperties: false });

const range = Type.Array(Type.Number(), { minItems: 2, maxItems: 2 });
const distribution = Type.Union([
  Type.Object({ uniform: range }, { additionalProperties: false }),
  Type.Object({ logUniform: range }, { additionalProperties: false }),
  Type.Object({ choice: Type.Array(Type.Unknown(), { minItems: 1 }) }, { additionalProperties: false }),
]);

export const SweepCreate = Type.Object(
  {
    machineIds,
    grid: Type.Optional(
      Type.Unsafe<Record<string, unknown[]>>({
        type: 'object',
        additionalProperties: { type: 'array', minItems: 1 },
        description: 'Lists of values per param key; the sweep is their cartesian product (first key slowest).',
      }),
    ),
    random: Type.Optional(
      Type.Object(
        {
          n: Type.Integer({ minimum: 1, maximum: PROCESS_LIMITS.perRequest }),
          seed: Type.Integer({ minimum: 0, maximum: 4_294_967_295 }),
          space: Type.Unsafe<Record<string, Static<typeof distribution>>>({
            type: 'object',
            minProperties: 1,
            additionalProperties: distribution,
            description: 'Per param key: {uniform: [a, b]}, {logUniform: [a, b]} or {choice: [values…]}.',
          }),
        },
        { additionalProperties: false, description: 'n samples, the same ones for the same seed.' },
      ),
    ),
    start: Type.Optional(startNow),
    name: Type.Optional(Type.String({ maxLength: PROCESS_LIMITS.name, description: "The sweep's name." })),
  },
  { additionalProperties: false, description: 'Exactly one of grid and random.' },
);
export type SweepInput = Static<typeof SweepCreate>;
export const USER_LIMITS = { login: 64, name: 200, password: { min: 8, max: 1024 }, roles: 50 } as const;

const RoleGrantInput = Type.Object(
  {
    role: Type.String({
      minLength: 1,
      maxLength: 64,
      description: 'A role name: viewer, operator, admin or a custom one.',
    }),
    templateId: Type.Optional(orNull(Type.Integer({ minimum: 1, maximum: MAX_ID, description: 'Null: global.' }))),
  },
  { additionalProperties: false },
);

const userRoles = (description: string) => Type.Array(RoleGrantInput, { maxItems: USER_LIMITS.roles, description });

export const UserCreate = Type.Object(
  {
    login: Type.String({ minLength: 1, maxLength: USER_LIMITS.login }),
    name: Type.Optional(Type.String({ maxLength: USER_LIMITS.name })),
    password: Type.Optional(
      Type.String({
        minLength: USER_LIMITS.password.min,
        maxLength: USER_LIMITS.password.max,
        description: 'When left out, a one-time password is generated and returned once (unless invite is true).',
      }),
    ),
    invite: Type.Optional(
      Type.Boolean({
        description:
          'true: no password; the answer carries inviteUrl, a link (valid 7 days, single use) on which the user sets ' +
          'their own. Not together with password.',
      }),
    ),
    roles: userRoles('Grants: a role globally (no templateId) or for one template.'),
  },
  { additionalProperties: false },
);
export type UserInput = Static<typeof UserCreate>;

export const UserPatch = Type.Object(
  {
    active: Type.Optional(
      Type.Boolean({ description: "false ends the user's sessions and revokes their tokens at once." }),
    ),
    name: Type.Optional(Type.String({ maxLength: USER_LIMITS.name })),
    roles: Type.Optional(userRoles("Replaces the user's grants.")),
  },
  { additionalProperties: false },
);
export type UserPatchInput = Static<typeof UserPatch>;

export const NOTIFICATION_LIMITS = { name: 200, url: 2048, secret: { min: 16, max: 1024 } } as const;

export const NotificationChannelCreate = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: NOTIFICATION_LIMITS.name }),
    kind: Type.Union([Type.Literal('webhook'), Type.Literal('slack')], {
      description: 'webhook: the event as signed JSON; slack: a Slack-compatible incoming webhook (`{text}`).',
    }),
    url: Type.String({
      minLength: 1,
      maxLength: NOTIFICATION_LIMITS.url,
      description: 'http(s) URL events are POSTed to; redirects are not followed.',
    }),
    secret: Type.Optional(
      Type.String({
        minLength: NOTIFICATION_LIMITS.secret.min,
        maxLength: NOTIFICATION_LIMITS.secret.max,
        description:
          'Webhook only, and required there: the HMAC-SHA256 key of X-Trainyard-Signature. Stored encrypted, never ' +
          'returned.',
      }),
    ),
  },
  { additionalProperties: false },
);
export type NotificationChannelInput = Static<typeof NotificationChannelCreate>;

export const SubscriptionCreate = Type.Object(
  {
    channelId: Id,
    templateId: Type.Optional(
      orNull(Type.Integer({ minimum: 1, maximum: MAX_ID, description: 'null or left out: every template.' })),
    ),
    events: Type.Array(
      Type.Union([
        Type.Literal('completed'),
        Type.Literal('failed'),
        Type.Literal('stalled'),
        Type.Literal('restarted'),
        Type.Literal('non_finite_loss'),
      ]),
      { minItems: 1, maxItems: 5, uniqueItems: true },
    ),
  },
  { additionalProperties: false },
);
export type SubscriptionInput = Static<typeof SubscriptionCreate>;
