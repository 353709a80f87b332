// The drizzle schema: one schema for PostgreSQL and embedded PGlite alike.
// Status lives in the workflow; `processes.status` mirrors it for fast lists, guarded
// by `status_version` so a late write never overwrites a newer status.
import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  boolean,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  serial,
  smallint,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';
import type { RestartPolicy } from '../domain/restart.js';

const createdAt = () => timestamp('created_at', { withTimezone: true }).notNull().defaultNow();
const updatedAt = () => timestamp('updated_at', { withTimezone: true }).notNull().defaultNow();

export const users = pgTable(
  'users',
  {
    id: serial('id').primaryKey(),
    login: text('login').notNull().unique(),
    passwordHash: text('password_hash').notNull(),
    /** A display name; the login when empty. */
    name: text('name').notNull().default(''),
    locale: text('locale').notNull().default('ru'),
    isActive: boolean('is_active').notNull().default(true),
    lastLoginAt: timestamp('last_login_at', { withTimezone: true }),
    /**
     * Set for a user made by single sign-on: who they are at the provider. Matched on both,
     * never on the login, which a local account may already hold (services/sso.ts).
     */
    oidcIssuer: text('oidc_issuer'),
    oidcSubject: text('oidc_subject'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [uniqueIndex('users_oidc_identity').on(t.oidcIssuer, t.oidcSubject)],
);

export const roles = pgTable('roles', {
  id: serial('id').primaryKey(),
  name: text('name').notNull().unique(),
  description: text('description').notNull().default(''),
  permissions: text('permissions')
    .array()
    .notNull()
    .default(sql`'{}'::text[]`),
  builtin: boolean('builtin').notNull().default(false),
  createdAt: createdAt(),
});

/** A role held globally (templateId null) or for one template. */
export const roleGrants = pgTable(
  'role_grants',
  {
    id: serial('id').primaryKey(),
    userId: integer('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    roleId: integer('role_id')
      .notNull()
      .references(() => roles.id, { onDelete: 'cascade' }),
    templateId: integer('template_id').references(() => templates.id, { onDelete: 'cascade' }),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex('role_grants_unique').on(t.userId, t.roleId, sql`coalesce(${t.templateId}, 0)`),
    index('role_grants_user').on(t.userId),
  ],
);

/** Server-side sessions, shared by every web process. `id` is the SHA-256 of the cookie value. */
export const sessions = pgTable(
  'sessions',
  {
    id: text('id').primaryKey(),
    userId: integer('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    csrfToken: text('csrf_token').notNull(),
    createdAt: createdAt(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  },
  (t) => [index('sessions_user').on(t.userId)],
);

export const apiTokens = pgTable(
  'api_tokens',
  {
    id: serial('id').primaryKey(),
    userId: integer('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    /** SHA-256 of the token; the token itself is shown once and never stored. */
    tokenHash: text('token_hash').notNull().unique(),
    createdAt: createdAt(),
    lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
    expiresAt: timestamp('expires_at', { withTimezone: true }),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
  },
  (t) => [index('api_tokens_user').on(t.userId)],
);

/**
 * An invite to set a first password: one per user, replaced when an admin issues a new one.
 * Only the SHA-256 of the link's token is stored; the row stays, accepted, once used.
 */
export const userInvites = pgTable('user_invites', {
  userId: integer('user_id')
    .primaryKey()
    .references(() => users.id, { onDelete: 'cascade' }),
  tokenHash: text('token_hash').notNull().unique(),
  expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  acceptedAt: timestamp('accepted_at', { withTimezone: true }),
  createdAt: createdAt(),
});

export const machines = pgTable('machines', {
  id: serial('id').primaryKey(),
  name: text('name').notNull().unique(),
  /** 'local' for the built-in machine, else 'ssh'. */
  kind: text('kind').notNull().default('ssh'),
  address: text('address').notNull(),
  sshUser: text('ssh_user'),
  /** Private key encrypted with a key derived from TRAINYARD_SECRET. */
  privateKeyEncrypted: text('private_key_encrypted'),
  /** Relative to TRAINYARD_KEYS_DIR; never an arbitrary path. */
  privateKeyPath: text('private_key_path'),
  hostKeyFingerprint: text('host_key_fingerprint'),
  slots: integer('slots').notNull().default(1),
  gpus: integer('gpus')
    .array()
    .notNull()
    .default(sql`'{}'::integer[]`),
  lostTimeoutSeconds: integer('lost_timeout_seconds').notNull().default(600),
  enabled: boolean('enabled').notNull().default(true),
  probe: jsonb('probe'),
  probedAt: timestamp('probed_at', { withTimezone: true }),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});

export const templates = pgTable('templates', {
  id: serial('id').primaryKey(),
  name: text('name').notNull().unique(),
  description: text('description').notNull().default(''),
  command: text('command').notNull(),
  workingDir: text('working_dir'),
  env: jsonb('env').$type<Record<string, string>>().notNull().default({}),
  /** Secret variables: name → value sealed under TRAINYARD_SECRET (lib/keybox.ts); opened only to launch a trainer. */
  secretEnv: jsonb('secret_env').$type<Record<string, string>>().notNull().default({}),
  params: jsonb('params').$type<Record<string, unknown>>().notNull().default({}),
  totalSteps: integer('total_steps'),
  stopGraceSeconds: integer('stop_grace_seconds').notNull().default(30),
  /** What follows a failed run (domain/restart.ts); null: never restarted. */
  restart: jsonb('restart').$type<Partial<RestartPolicy>>(),
  /** A run that writes no metric line for this long is stalled; null: never. */
  stallSeconds: integer('stall_seconds'),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});

/** A set of processes made together from one template: a grid or random samples of its params. */
export const sweeps = pgTable('sweeps', {
  id: serial('id').primaryKey(),
  templateId: integer('template_id')
    .notNull()
    .references(() => templates.id, { onDelete: 'cascade' }),
  name: text('name').notNull(),
  /** What was asked: the grid or the random space with its seed, for the record. */
  spec: jsonb('spec').notNull(),
  createdAt: createdAt(),
});

export const processes = pgTable(
  'processes',
  {
    id: serial('id').primaryKey(),
    /** Null for processes made before names: they read as their template's name and params. */
    name: text('name'),
    sweepId: integer('sweep_id').references(() => sweeps.id, { onDelete: 'set null' }),
    templateId: integer('template_id')
      .notNull()
      .references(() => templates.id, { onDelete: 'restrict' }),
    machineId: integer('machine_id')
      .notNull()
      .references(() => machines.id, { onDelete: 'restrict' }),
    params: jsonb('params').$type<Record<string, unknown>>().notNull().default({}),
    status: text('status').notNull().default('created'),
    statusVersion: bigint('status_version', { mode: 'number' }).notNull().default(0),
    statusBeforeDisable: text('status_before_disable'),
    lastError: text('last_error'),
    /** Set while delete is in progress; the row goes once the workflow has cleaned up. */
    deleting: boolean('deleting').notNull().default(false),
    /** 1-based within the current restart chain (a user's start begins a new chain). */
    attempt: integer('attempt').notNull().default(1),
    /** The current run wrote no metric line for its template's stallSeconds. */
    stalled: boolean('stalled').notNull().default(false),
    /** Random and never reused: with the installation id it names the process's workflow. */
    key: uuid('key').notNull().defaultRandom().unique(),
    /**
     * The id of the process's workflow, fixed when the row is made: NEW_WORKFLOW_ID asks the
     * trainyard_process_workflow_id trigger to name it `trainyard-<installation>-process-<id>-<key>`
     * (db/migrations/0012_workflow_ids.sql). Rows from before it, and rows a release before it inserts
     * (the default, `''`), have `training-process-<id>`.
     */
    workflowId: text('workflow_id').notNull().default('').unique(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    index('processes_template').on(t.templateId, t.id),
    index('processes_machine').on(t.machineId),
    index('processes_status').on(t.status, t.id),
    index('processes_sweep').on(t.sweepId),
  ],
);

export const runs = pgTable(
  'runs',
  {
    id: serial('id').primaryKey(),
    processId: integer('process_id')
      .notNull()
      .references(() => processes.id, { onDelete: 'cascade' }),
    /** 1, 2, … per process. */
    number: integer('number').notNull(),
    /** The template and parameters as they were when the run started. */
    templateSnapshot: jsonb('template_snapshot').notNull(),
    params: jsonb('params').$type<Record<string, unknown>>().notNull().default({}),
    machineId: integer('machine_id').notNull(),
    status: text('status').notNull().default('queued'),
    runDir: text('run_dir'),
    pid: integer('pid'),
    pgid: integer('pgid'),
    processStartTime: text('process_start_time'),
    slotIndex: integer('slot_index'),
    /** Fencing token: the attempt that owns the trainer; stale attempts never touch it. */
    ownerAttempt: text('owner_attempt'),
    metricsOffset: bigint('metrics_offset', { mode: 'number' }).notNull().default(0),
    malformedLines: integer('malformed_lines').notNull().default(0),
    oversizedLines: integer('oversized_lines').notNull().default(0),
    step: bigint('step', { mode: 'number' }),
    totalSteps: bigint('total_steps', { mode: 'number' }),
    epoch: doublePrecision('epoch'),
    etaState: jsonb('eta_state'),
    etaSeconds: integer('eta_seconds'),
    exitCode: integer('exit_code'),
    error: text('error'),
    unreachableSince: timestamp('unreachable_since', { withTimezone: true }),
    /**
     * The run failed while its machine was unreachable: its trainer may still be there, to be stopped
     * when the machine answers.
     */
    trainerMayRemain: boolean('trainer_may_remain').notNull().default(false),
    /** The attempt of its restart chain this run is (1-based); a restart resumes from the run before. */
    attempt: integer('attempt').notNull().default(1),
    /** Why a failed run failed, as the restart policy classes it (domain/restart.ts); null otherwise. */
    failureClass: text('failure_class'),
    /** No metric line for the template's stallSeconds (set when seen, cleared by the next line). */
    stalled: boolean('stalled').notNull().default(false),
    /** The last few KiB of the trainer's output, copied while it runs, so logs stay viewable without the machine. */
    stdoutTail: text('stdout_tail').notNull().default(''),
    stderrTail: text('stderr_tail').notNull().default(''),
    queuedAt: timestamp('queued_at', { withTimezone: true }).notNull().defaultNow(),
    startedAt: timestamp('started_at', { withTimezone: true }),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
  },
  (t) => [uniqueIndex('runs_process_number').on(t.processId, t.number)],
);

/** One row per (run, series name), so points carry a small integer instead of the name. */
export const metricSeries = pgTable(
  'metric_series',
  {
    id: serial('id').primaryKey(),
    runId: integer('run_id')
      .notNull()
      .references(() => runs.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
  },
  (t) => [uniqueIndex('metric_series_run_name').on(t.runId, t.name)],
);

/**
 * A point is (run, series, step, value); a step written again replaces the value.
 * No foreign key to metric_series: its per-row check halves ingest (DESIGN §8), so a
 * process's points are deleted explicitly with it (activities/control.ts).
 */
export const metricPoints = pgTable(
  'metric_points',
  {
    seriesId: integer('series_id').notNull(),
    step: bigint('step', { mode: 'number' }).notNull(),
    value: doublePrecision('value').notNull(),
  },
  (t) => [primaryKey({ columns: [t.seriesId, t.step] })],
);

/**
 * Per series, buckets of 2^level steps (metrics/rollups.ts): point count, finite
 * min and max with their steps, and the first NaN/±Infinity step. Written in the same
 * transaction as the points, so the chart reads a few thousand rows, not millions.
 */
export const metricRollups = pgTable(
  'metric_rollups',
  {
    seriesId: integer('series_id')
      .notNull()
      .references(() => metricSeries.id, { onDelete: 'cascade' }),
    level: smallint('level').notNull(),
    bucket: bigint('bucket', { mode: 'number' }).notNull(),
    count: integer('count').notNull(),
    minStep: bigint('min_step', { mode: 'number' }),
    minValue: doublePrecision('min_value'),
    maxStep: bigint('max_step', { mode: 'number' }),
    maxValue: doublePrecision('max_value'),
    nanStep: bigint('nan_step', { mode: 'number' }),
    posInfStep: bigint('pos_inf_step', { mode: 'number' }),
    negInfStep: bigint('neg_inf_step', { mode: 'number' }),
  },
  (t) => [primaryKey({ name: 'metric_rollups_pk', columns: [t.seriesId, t.level, t.bucket] })],
);

/** Slot leases: a run holds (machine, slot) from before launch until its trainer is gone. */
export const slotLeases = pgTable(
  'slot_leases',
  {
    machineId: integer('machine_id')
      .notNull()
      .references(() => machines.id, { onDelete: 'cascade' }),
    slotIndex: integer('slot_index').notNull(),
    runId: integer('run_id').notNull().unique(),
    processId: integer('process_id').notNull(),
    acquiredAt: timestamp('acquired_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.machineId, t.slotIndex] })],
);

/** The process's own log: things operators should know that are not trainer output. */
export const processEvents = pgTable(
  'process_events',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    processId: integer('process_id')
      .notNull()
      .references(() => processes.id, { onDelete: 'cascade' }),
    runId: integer('run_id'),
    level: text('level').notNull().default('info'),
    message: text('message').notNull(),
    at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('process_events_process').on(t.processId, t.id)],
);

export const auditEvents = pgTable(
  'audit_events',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
    actorUserId: integer('actor_user_id'),
    actorLogin: text('actor_login'),
    /** e.g. 'process.start', 'login', 'token.create'. */
    action: text('action').notNull(),
    targetType: text('target_type'),
    targetId: text('target_id'),
    outcome: text('outcome').notNull(),
    detail: jsonb('detail'),
  },
  (t) => [index('audit_events_at').on(t.at), index('audit_events_actor').on(t.actorUserId)],
);

/** Facts about this installation, e.g. that the first-start seed has run (so a deleted demo template stays deleted). */
export const appState = pgTable('app_state', {
  key: text('key').primaryKey(),
  value: jsonb('value').notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

/** Where notifications go (services/notification-channels.ts): a signed JSON webhook or a Slack-compatible one. */
export const notificationChannels = pgTable('notification_channels', {
  id: serial('id').primaryKey(),
  name: text('name').notNull().unique(),
  /** 'webhook' or 'slack'. */
  kind: text('kind').notNull(),
  url: text('url').notNull(),
  /** The webhook's HMAC key, sealed under TRAINYARD_SECRET (lib/keybox.ts); never shown again. */
  secretEncrypted: text('secret_encrypted'),
  createdAt: createdAt(),
});

/** A user's wish to hear of some events of one template's processes (templateId null: of every template). */
export const notificationSubscriptions = pgTable(
  'notification_subscriptions',
  {
    id: serial('id').primaryKey(),
    userId: integer('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    channelId: integer('channel_id')
      .notNull()
      .references(() => notificationChannels.id, { onDelete: 'cascade' }),
    templateId: integer('template_id').references(() => templates.id, { onDelete: 'cascade' }),
    events: text('events').array().notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    index('notification_subscriptions_channel').on(t.channelId),
    index('notification_subscriptions_user').on(t.userId),
  ],
);

/**
 * Every attempt to deliver an event to a channel, for the delivery log. `eventKey` is the
 * event's idempotency key (the `id` the receiver sees); no foreign key to the process, which
 * may be gone by the time a late attempt is written.
 */
export const notificationDeliveries = pgTable(
  'notification_deliveries',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    channelId: integer('channel_id')
      .notNull()
      .references(() => notificationChannels.id, { onDelete: 'cascade' }),
    eventKey: text('event_key').notNull(),
    event: text('event').notNull(),
    processId: integer('process_id'),
    attempt: integer('attempt').notNull(),
    at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
    /** The receiver's HTTP status; null when no answer came (refused, timed out). */
    httpStatus: integer('http_status'),
    ok: boolean('ok').notNull(),
    error: text('error'),
  },
  (t) => [index('notification_deliveries_channel').on(t.channelId, t.id)],
);
