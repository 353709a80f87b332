// The status table of docs/design.md §2: statuses, labels, user actions and every
// transition a training process may make. The workflow's update validators,
// the API (409 reasons) and the action menus all read this one module, so a
// menu shows exactly the actions that would succeed. Pure: no I/O, no clock,
// safe to import from workflow code.

export const STATUSES = [
  'created',
  'queued',
  'starting',
  'running',
  'stopping',
  'stopped',
  'completed',
  'failed',
  'disabled',
] as const;
export type ProcessStatus = (typeof STATUSES)[number];

/** User actions, in menu order. */
export const USER_ACTIONS = ['start', 'stop', 'disable', 'enable', 'delete'] as const;
export type UserAction = (typeof USER_ACTIONS)[number];

export interface LocalizedText {
  readonly en: string;
  readonly ru: string;
}

export const STATUS_LABELS: Readonly<Record<ProcessStatus, LocalizedText>> = {
  created: { en: 'Created', ru: 'Создан' },
  queued: { en: 'Queued', ru: 'В очереди' },
  starting: { en: 'Starting', ru: 'Запускается' },
  running: { en: 'Running', ru: 'Выполняется' },
  stopping: { en: 'Stopping', ru: 'Останавливается' },
  stopped: { en: 'Stopped', ru: 'Остановлен' },
  completed: { en: 'Completed', ru: 'Завершён' },
  failed: { en: 'Failed', ru: 'Ошибка' },
  disabled: { en: 'Disabled', ru: 'Выключен' },
};

/** Menu entries: the user actions plus monitoring, which is a page, not a status change. */
export type MenuItemId = UserAction | 'monitoring';

export interface MenuItem {
  readonly id: MenuItemId;
  readonly label: LocalizedText;
}

export const MENU_ITEMS: readonly MenuItem[] = [
  { id: 'start', label: { en: 'Start', ru: 'Запустить' } },
  { id: 'stop', label: { en: 'Stop', ru: 'Остановить' } },
  { id: 'disable', label: { en: 'Disable', ru: 'Выключить' } },
  { id: 'enable', label: { en: 'Enable', ru: 'Включить' } },
  { id: 'monitoring', label: { en: 'Training monitoring', ru: 'Мониторинг обучения' } },
  { id: 'delete', label: { en: 'Delete', ru: 'Удалить' } },
];

const STATUS_SET: ReadonlySet<string> = new Set(STATUSES);
const ACTION_SET: ReadonlySet<string> = new Set(USER_ACTIONS);

/** For values read from the database, a query string or a workflow query. */
export function isStatus(value: unknown): value is ProcessStatus {
  return typeof value === 'string' && STATUS_SET.has(value);
}

export function isUserAction(value: unknown): value is UserAction {
  return typeof value === 'string' && ACTION_SET.has(value);
}

/** A trainer may exist or be about to: stop, disable and delete must stop it first. */
export const ACTIVE_STATUSES: readonly ProcessStatus[] = ['queued', 'starting', 'running', 'stopping'];
/** A run has ended and nothing is in flight; the process can be started again. */
export const FINAL_STATUSES: readonly ProcessStatus[] = ['stopped', 'completed', 'failed'];

export function isActive(status: ProcessStatus): boolean {
  return status === 'queued' || status === 'starting' || status === 'running' || status === 'stopping';
}

export function isFinal(status: ProcessStatus): boolean {
  return status === 'stopped' || status === 'completed' || status === 'failed';
}

export interface DecideContext {
  /** The status recorded when the process was disabled; only `enable` reads it. */
  readonly statusBeforeDisable?: ProcessStatus | undefined;
}

export type Decision =
  | {
      readonly ok: true;
      /**
       * The status to record once the action is done. For `delete` it is the
       * current status: deletion removes the process instead of moving it.
       */
      readonly next: ProcessStatus;
      /** An active process must be stopped (TERM, grace, KILL) before `next` is recorded. */
      readonly stopFirst: boolean;
    }
  | { readonly ok: false; readonly code: 'not_allowed'; readonly reason: LocalizedText };

/**
 * Whether `action` is allowed in `status`, and what it leads to.
 *
 * `enable` returns the status the process had before it was disabled, except
 * that an active one comes back as `stopped` (its trainer was stopped on
 * disable). When that status is unknown (missing context, or a nonsensical
 * `disabled`), enable also gives `stopped`: like every status enable can
 * return it allows `start`, and it claims neither that the process never ran
 * (`created`) nor how its last run ended (`completed`/`failed`).
 */
export function decide(status: ProcessStatus, action: UserAction, ctx: DecideContext = {}): Decision {
  switch (action) {
    case 'start':
      if (status === 'created' || isFinal(status)) return allow('queued', false);
      break;
    case 'stop':
      if (status === 'queued' || status === 'starting' || status === 'running') return allow('stopping', false);
      break;
    case 'disable':
      if (status !== 'disabled') return allow('disabled', isActive(status));
      break;
    case 'enable':
      if (status === 'disabled') return allow(statusAfterEnable(ctx.statusBeforeDisable), false);
      break;
    case 'delete':
      return allow(status, isActive(status));
  }
  return refuse(status, action);
}

function statusAfterEnable(before: ProcessStatus | undefined): ProcessStatus {
  if (before === undefined || before === 'disabled' || isActive(before)) return 'stopped';
  return before;
}

function allow(next: ProcessStatus, stopFirst: boolean): Decision {
  return { ok: true, next, stopFirst };
}

const ACTION_VERBS: Readonly<Record<UserAction, LocalizedText>> = {
  start: { en: 'start', ru: 'запустить' },
  stop: { en: 'stop', ru: 'остановить' },
  disable: { en: 'disable', ru: 'выключить' },
  enable: { en: 'enable', ru: 'включить' },
  delete: { en: 'delete', ru: 'удалить' },
};

/** Every action's refusal while the process is being deleted; the workflow's validators give it. */
export const DELETE_UNDER_WAY: LocalizedText = { en: 'The process is being deleted.', ru: 'Процесс удаляется.' };

// A second sentence only where it tells the operator what to do next.
function refusalHint(status: ProcessStatus, action: UserAction): LocalizedText | null {
  if (action === 'start' && status === 'disabled') return { en: 'Enable it first.', ru: 'Сначала включите его.' };
  if (action === 'start' && status === 'stopping') {
    return { en: 'Wait until it has stopped.', ru: 'Дождитесь его остановки.' };
  }
  return null;
}

function refuse(status: ProcessStatus, action: UserAction): Decision {
  const verb = ACTION_VERBS[action];
  const label = STATUS_LABELS[status];
  const hint = refusalHint(status, action);
  const en = `Cannot ${verb.en} a process that is ${label.en.toLowerCase()}.`;
  const ru = `Нельзя ${verb.ru} процесс в статусе «${label.ru}».`;
  return {
    ok: false,
    code: 'not_allowed',
    reason: hint ? { en: `${en} ${hint.en}`, ru: `${ru} ${hint.ru}` } : { en, ru },
  };
}

/** The user actions `decide` accepts in `status`, in menu order. */
export function allowedActions(status: ProcessStatus): UserAction[] {
  return USER_ACTIONS.filter((action) => decide(status, action).ok);
}

/**
 * The menu for a process in `status`: the allowed actions plus monitoring,
 * which is always offered. Permissions are filtered by the caller.
 */
export function menuFor(status: ProcessStatus): MenuItem[] {
  const allowed = new Set<MenuItemId>(allowedActions(status));
  return MENU_ITEMS.filter((item) => item.id === 'monitoring' || allowed.has(item.id));
}

/**
 * Transitions the workflow records on its own, not on a user's request:
 *
 * - queued → starting: a slot lease was taken.
 * - queued → failed: the lease can fail for good (the machine was removed);
 *   the run then fails with that reason instead of waiting forever.
 *   A queued process is never recorded as stopped directly: a stop always
 *   passes through `stopping`, even when nothing has been launched, so every
 *   stop looks the same to the UI and to the lifecycle measurements.
 * - starting → running: the trainer was launched and is alive. A trainer
 *   that exits at once was still running, so it is recorded running before
 *   completed or failed; there is no starting → completed.
 * - starting → failed: the launch failed.
 * - running → completed | failed: the trainer exited 0 / non-zero, or the
 *   machine stayed unreachable past its lost-timeout.
 * - stopping → stopped: the process group is gone.
 * - stopping → failed: the stop could not be confirmed because the machine
 *   stayed unreachable past its lost-timeout. Never stopping → completed: a
 *   requested stop wins over the exit code the trainer then returns.
 *
 * Stop, disable, enable and restart transitions come from `decide`.
 */
export const INTERNAL_TRANSITIONS: Readonly<Record<ProcessStatus, readonly ProcessStatus[]>> = {
  created: [],
  queued: ['starting', 'failed'],
  starting: ['running', 'failed'],
  running: ['completed', 'failed'],
  stopping: ['stopped', 'failed'],
  stopped: [],
  completed: [],
  failed: [],
  disabled: [],
};

// Every from → to some user action can produce, for any enable context.
const USER_TRANSITIONS: ReadonlyMap<ProcessStatus, ReadonlySet<ProcessStatus>> = (() => {
  const contexts: DecideContext[] = [{}, ...STATUSES.map((s) => ({ statusBeforeDisable: s }))];
  const map = new Map<ProcessStatus, Set<ProcessStatus>>();
  for (const from of STATUSES) {
    const targets = new Set<ProcessStatus>();
    for (const action of USER_ACTIONS) {
      for (const ctx of contexts) {
        const d = decide(from, action, ctx);
        if (d.ok && d.next !== from) targets.add(d.next);
      }
    }
    map.set(from, targets);
  }
  return map;
})();

/**
 * Whether the workflow may record `to` right after `from`, whether on its own
 * (INTERNAL_TRANSITIONS) or as the result of a user action. Recording the same
 * status again is not a transition and answers false.
 */
export function canTransition(from: ProcessStatus, to: ProcessStatus): boolean {
  if (from === to) return false;
  return INTERNAL_TRANSITIONS[from].includes(to) || (USER_TRANSITIONS.get(from)?.has(to) ?? false);
}
