import { describe, expect, it } from 'vitest';
import {
  MENU_ITEMS,
  STATUSES,
  STATUS_LABELS,
  USER_ACTIONS,
  allowedActions,
  canTransition,
  decide,
  isActive,
  isFinal,
  isStatus,
  isUserAction,
  menuFor,
  type ProcessStatus,
  type UserAction,
} from '../../domain/status.js';

// The whole status × action matrix, written out by hand from docs/design.md §2.
// null = refused; [next, stopFirst] = allowed. Enable without context.
type Cell = null | readonly [ProcessStatus, boolean];
const EXPECTED: Record<ProcessStatus, Record<UserAction, Cell>> = {
  created: {
    start: ['queued', false],
    stop: null,
    disable: ['disabled', false],
    enable: null,
    delete: ['created', false],
  },
  queued: {
    start: null,
    stop: ['stopping', false],
    disable: ['disabled', true],
    enable: null,
    delete: ['queued', true],
  },
  starting: {
    start: null,
    stop: ['stopping', false],
    disable: ['disabled', true],
    enable: null,
    delete: ['starting', true],
  },
  running: {
    start: null,
    stop: ['stopping', false],
    disable: ['disabled', true],
    enable: null,
    delete: ['running', true],
  },
  stopping: { start: null, stop: null, disable: ['disabled', true], enable: null, delete: ['stopping', true] },
  stopped: {
    start: ['queued', false],
    stop: null,
    disable: ['disabled', false],
    enable: null,
    delete: ['stopped', false],
  },
  completed: {
    start: ['queued', false],
    stop: null,
    disable: ['disabled', false],
    enable: null,
    delete: ['completed', false],
  },
  failed: {
    start: ['queued', false],
    stop: null,
    disable: ['disabled', false],
    enable: null,
    delete: ['failed', false],
  },
  disabled: { start: null, stop: null, disable: null, enable: ['stopped', false], delete: ['disabled', false] },
};

describe('status table', () => {
  it('lists the nine statuses and five user actions of DESIGN §2', () => {
    expect([...STATUSES]).toEqual([
      'created',
      'queued',
      'starting',
      'running',
      'stopping',
      'stopped',
      'completed',
      'failed',
      'disabled',
    ]);
    expect([...USER_ACTIONS]).toEqual(['start', 'stop', 'disable', 'enable', 'delete']);
  });

  for (const status of STATUSES) {
    for (const action of USER_ACTIONS) {
      const cell = EXPECTED[status][action];
      it(`${action} in ${status} is ${cell ? `allowed → ${cell[0]}${cell[1] ? ' (stop first)' : ''}` : 'refused'}`, () => {
        const d = decide(status, action, {});
        if (cell === null) {
          expect(d.ok).toBe(false);
          if (d.ok) return;
          expect(d.code).toBe('not_allowed');
          expect(d.reason.en).toContain(`Cannot ${action} a process that is ${status}.`);
          expect(d.reason.ru).toContain(`процесс в статусе «${STATUS_LABELS[status].ru}»`);
        } else {
          expect(d).toEqual({ ok: true, next: cell[0], stopFirst: cell[1] });
        }
      });
    }
  }

  it('refuses with the exact messages operators read', () => {
    expect(decide('running', 'start')).toEqual({
      ok: false,
      code: 'not_allowed',
      reason: {
        en: 'Cannot start a process that is running.',
        ru: 'Нельзя запустить процесс в статусе «Выполняется».',
      },
    });
    const disabled = decide('disabled', 'start');
    expect(!disabled.ok && disabled.reason).toEqual({
      en: 'Cannot start a process that is disabled. Enable it first.',
      ru: 'Нельзя запустить процесс в статусе «Выключен». Сначала включите его.',
    });
    const stopping = decide('stopping', 'start');
    expect(!stopping.ok && stopping.reason.en).toBe(
      'Cannot start a process that is stopping. Wait until it has stopped.',
    );
    const stopped = decide('completed', 'stop');
    expect(!stopped.ok && stopped.reason.ru).toBe('Нельзя остановить процесс в статусе «Завершён».');
  });
});

describe('enable', () => {
  const cases: Array<[ProcessStatus | undefined, ProcessStatus]> = [
    [undefined, 'stopped'],
    ['created', 'created'],
    ['queued', 'stopped'],
    ['starting', 'stopped'],
    ['running', 'stopped'],
    ['stopping', 'stopped'],
    ['stopped', 'stopped'],
    ['completed', 'completed'],
    ['failed', 'failed'],
    ['disabled', 'stopped'],
  ];
  for (const [before, after] of cases) {
    it(`brings a process disabled while ${before ?? 'unknown'} back as ${after}`, () => {
      expect(decide('disabled', 'enable', { statusBeforeDisable: before })).toEqual({
        ok: true,
        next: after,
        stopFirst: false,
      });
    });
  }

  it('never brings a process back into an active status', () => {
    for (const before of STATUSES) {
      const d = decide('disabled', 'enable', { statusBeforeDisable: before });
      expect(d.ok && isActive(d.next)).toBe(false);
    }
  });

  it('is refused in every status but disabled, whatever the context', () => {
    for (const status of STATUSES.filter((s) => s !== 'disabled')) {
      expect(decide(status, 'enable', { statusBeforeDisable: 'completed' }).ok).toBe(false);
    }
  });
});

describe('labels', () => {
  it('match DESIGN §2 exactly', () => {
    expect(STATUS_LABELS).toEqual({
      created: { en: 'Created', ru: 'Создан' },
      queued: { en: 'Queued', ru: 'В очереди' },
      starting: { en: 'Starting', ru: 'Запускается' },
      running: { en: 'Running', ru: 'Выполняется' },
      stopping: { en: 'Stopping', ru: 'Останавливается' },
      stopped: { en: 'Stopped', ru: 'Остановлен' },
      completed: { en: 'Completed', ru: 'Завершён' },
      failed: { en: 'Failed', ru: 'Ошибка' },
      disabled: { en: 'Disabled', ru: 'Выключен' },
    });
  });

  it('menu items are in DESIGN §1 order with its exact labels', () => {
    expect(MENU_ITEMS.map((m) => [m.id, m.label.en, m.label.ru])).toEqual([
      ['start', 'Start', 'Запустить'],
      ['stop', 'Stop', 'Остановить'],
      ['disable', 'Disable', 'Выключить'],
      ['enable', 'Enable', 'Включить'],
      ['monitoring', 'Training monitoring', 'Мониторинг обучения'],
      ['delete', 'Delete', 'Удалить'],
    ]);
  });
});

describe('allowedActions and menuFor', () => {
  for (const status of STATUSES) {
    it(`in ${status} offer exactly what decide accepts, in menu order`, () => {
      const expected = USER_ACTIONS.filter((a) => EXPECTED[status][a] !== null);
      expect(allowedActions(status)).toEqual(expected);
      expect(allowedActions(status)).toEqual(USER_ACTIONS.filter((a) => decide(status, a).ok));
      expect(menuFor(status).map((m) => m.id)).toEqual(
        MENU_ITEMS.map((m) => m.id).filter((id) => id === 'monitoring' || expected.includes(id)),
      );
    });
  }

  it('offers start and disable, then delete, for a completed process', () => {
    expect(allowedActions('completed')).toEqual(['start', 'disable', 'delete']);
    expect(menuFor('running').map((m) => m.id)).toEqual(['stop', 'disable', 'monitoring', 'delete']);
  });
});

describe('isActive / isFinal / guards', () => {
  it('classify statuses', () => {
    expect(STATUSES.filter(isActive)).toEqual(['queued', 'starting', 'running', 'stopping']);
    expect(STATUSES.filter(isFinal)).toEqual(['stopped', 'completed', 'failed']);
  });

  it('recognise statuses and actions from untyped input', () => {
    expect(isStatus('running')).toBe(true);
    expect(isStatus('Running')).toBe(false);
    expect(isStatus(undefined)).toBe(false);
    expect(isUserAction('delete')).toBe(true);
    expect(isUserAction('monitoring')).toBe(false);
  });
});

describe('canTransition', () => {
  // Every transition the workflow may record, written out by hand.
  const ALLOWED: Record<ProcessStatus, ProcessStatus[]> = {
    created: ['queued', 'disabled'],
    queued: ['starting', 'stopping', 'failed', 'disabled'],
    starting: ['running', 'stopping', 'failed', 'disabled'],
    running: ['stopping', 'completed', 'failed', 'disabled'],
    stopping: ['stopped', 'failed', 'disabled'],
    stopped: ['queued', 'disabled'],
    completed: ['queued', 'disabled'],
    failed: ['queued', 'disabled'],
    disabled: ['created', 'stopped', 'completed', 'failed'],
  };

  for (const from of STATUSES) {
    it(`from ${from} allows exactly ${ALLOWED[from].join(', ')}`, () => {
      expect(STATUSES.filter((to) => canTransition(from, to))).toEqual(
        STATUSES.filter((to) => ALLOWED[from].includes(to)),
      );
    });
  }

  it('rejects the impossible ones a sloppy workflow might record', () => {
    expect(canTransition('queued', 'running')).toBe(false);
    expect(canTransition('queued', 'stopped')).toBe(false);
    expect(canTransition('stopping', 'completed')).toBe(false);
    expect(canTransition('disabled', 'running')).toBe(false);
    expect(canTransition('running', 'running')).toBe(false);
  });

  it('agrees with decide for every allowed user action', () => {
    for (const from of STATUSES) {
      for (const action of USER_ACTIONS) {
        const d = decide(from, action);
        if (d.ok && d.next !== from) expect(canTransition(from, d.next)).toBe(true);
      }
    }
  });
});
