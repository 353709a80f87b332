// Validation of a template's restart policy and stall timeout (domain/restart.ts holds
// the rules they feed). A failure names its field, e.g. `restart.except`.
import {
  DEFAULT_RESTART_POLICY,
  FAILURE_CLASSES,
  isFailureClass,
  RESTART_LIMITS,
  type RestartPolicy,
} from '../domain/restart.js';
import { invalid } from './errors.js';
import { boolean, integer, isPlainObject, rejectUnknown } from './validate.js';

const RESTART_FIELDS = ['onFailure', 'backoffSeconds', 'onMachineLost', 'except'] as const;

/** A full policy (null: the defaults, i.e. never restart); fields left out take their defaults. */
export function validRestart(value: unknown): RestartPolicy | null {
  if (value === null) return null;
  if (!isPlainObject(value))
    throw invalid('restart', {
      en: 'restart is an object: {onFailure, backoffSeconds, onMachineLost, except}.',
      ru: 'restart — объект: {onFailure, backoffSeconds, onMachineLost, except}.',
    });
  try {
    rejectUnknown(value, RESTART_FIELDS);
  } catch (error) {
    throw invalid('restart', {
      en: `restart: ${(error as Error).message}`,
      ru: `Политика перезапуска задана неверно (${(error as Error).message}).`,
    });
  }
  const policy: RestartPolicy = { ...DEFAULT_RESTART_POLICY, except: [] };
  if (value.onFailure !== undefined)
    policy.onFailure = integer('restart.onFailure', value.onFailure, 0, RESTART_LIMITS.onFailure);
  if (value.backoffSeconds !== undefined)
    policy.backoffSeconds = integer('restart.backoffSeconds', value.backoffSeconds, 0, RESTART_LIMITS.backoffSeconds);
  if (value.onMachineLost !== undefined) policy.onMachineLost = boolean('restart.onMachineLost', value.onMachineLost);
  if (value.except !== undefined) {
    if (!Array.isArray(value.except) || value.except.length > FAILURE_CLASSES.length)
      throw invalid('restart.except', {
        en: `restart.except is a list of failure classes: ${FAILURE_CLASSES.join(', ')}.`,
        ru: `restart.except — список классов ошибок: ${FAILURE_CLASSES.join(', ')}.`,
      });
    for (const item of value.except as unknown[]) {
      if (!isFailureClass(item))
        throw invalid('restart.except', {
          en: `restart.except: ${JSON.stringify(item)} is not a failure class (${FAILURE_CLASSES.join(', ')}).`,
          ru: `restart.except: ${JSON.stringify(item)} — не класс ошибки (${FAILURE_CLASSES.join(', ')}).`,
        });
    }
    policy.except = [...new Set(value.except as RestartPolicy['except'])];
  }
  return policy;
}

export function validStallSeconds(value: unknown): number | null {
  if (value === null) return null;
  const { min, max } = RESTART_LIMITS.stallSeconds;
  return integer('stallSeconds', value, min, max);
}
