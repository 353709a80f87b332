// Human-readable durations for the "~Time left" / "~До окончания" column and
// elapsed times. Two units at most ("2 h 14 min", "3 d 4 h"): an estimate is
// never more precise than that, and a short string fits a table cell.

export type Locale = 'en' | 'ru';

const UNITS: Readonly<Record<Locale, { d: string; h: string; min: string; s: string }>> = {
  en: { d: 'd', h: 'h', min: 'min', s: 's' },
  ru: { d: 'д', h: 'ч', min: 'мин', s: 'с' },
};

/** Shown when there is nothing to show (no estimate yet, or a broken value). */
export const NO_VALUE = '—';

/**
 * "2 h 14 min", "45 s", "3 d 4 h" / "2 ч 14 мин", "45 с", "3 д 4 ч".
 * Rounded to the smaller unit shown, then re-split, so 3599.7 s reads "1 h"
 * rather than "59 min 60 s". Negative values read as 0 s; NaN and ±Infinity
 * as "—".
 */
export function formatDuration(seconds: number, locale: Locale): string {
  if (!Number.isFinite(seconds)) return NO_VALUE;
  const u = UNITS[locale];
  const s = Math.max(0, seconds);

  const totalSeconds = Math.round(s);
  if (totalSeconds < 3600) {
    const min = Math.floor(totalSeconds / 60);
    const sec = totalSeconds % 60;
    return pair(min, u.min, sec, u.s);
  }
  const totalMinutes = Math.round(s / 60);
  if (totalMinutes < 24 * 60) {
    return pair(Math.floor(totalMinutes / 60), u.h, totalMinutes % 60, u.min);
  }
  const totalHours = Math.round(s / 3600);
  return pair(Math.floor(totalHours / 24), u.d, totalHours % 24, u.h);
}

/** The estimate form: "~2 h 14 min"; null (no estimate yet) reads "—". */
export function formatEta(seconds: number | null, locale: Locale): string {
  if (seconds === null || !Number.isFinite(seconds)) return NO_VALUE;
  return `~${formatDuration(seconds, locale)}`;
}

// "big unit small unit", leaving out a zero part; seconds alone when under a minute.
function pair(big: number, bigUnit: string, small: number, smallUnit: string): string {
  if (big === 0) return `${small} ${smallUnit}`;
  if (small === 0) return `${big} ${bigUnit}`;
  return `${big} ${bigUnit} ${small} ${smallUnit}`;
}
