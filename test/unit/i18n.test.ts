import { describe, expect, it } from 'vitest';
import { MENU_ITEMS, STATUS_LABELS } from '../../domain/status.js';
import { LOCALES, MESSAGE_KEYS, translator } from '../../views/i18n.js';

describe('the UI dictionaries', () => {
  it('give every key a text in every locale', () => {
    for (const locale of LOCALES) {
      const t = translator(locale);
      for (const key of MESSAGE_KEYS) expect(t(key), `${locale} ${key}`).toMatch(/\S/);
    }
  });

  it('define each label once: no two keys carry the same English and Russian text', () => {
    const en = translator('en');
    const ru = translator('ru');
    const byText = new Map<string, string[]>();
    for (const key of MESSAGE_KEYS) {
      const text = `${en(key)} | ${ru(key)}`;
      byText.set(text, [...(byText.get(text) ?? []), key]);
    }
    expect([...byText.values()].filter((keys) => keys.length > 1)).toEqual([]);
  });

  it('keep the labels of the design’s word list verbatim', () => {
    const en = translator('en');
    const ru = translator('ru');
    const words: Array<[Parameters<typeof en>[0], string, string]> = [
      ['training', 'Training', 'Обучение'],
      ['trainingTemplates', 'Training templates', 'Шаблоны обучения'],
      ['processes', 'Processes', 'Процессы'],
      ['addTrainingProcess', 'Add training process', 'Добавить процессы обучения'],
      ['targetMachineAddress', 'Target machine address', 'Адрес целевой машины'],
      ['save', 'Save', 'Сохранить'],
      ['timeLeft', '~Time left', '~До окончания'],
      ['menu', '☰', '☰'],
    ];
    expect(words.map(([key]) => [key, en(key), ru(key)])).toEqual(words);
    expect(MENU_ITEMS.map((item) => item.label.ru)).toEqual([
      'Запустить',
      'Остановить',
      'Выключить',
      'Включить',
      'Мониторинг обучения',
      'Удалить',
    ]);
    expect(STATUS_LABELS.running).toEqual({ en: 'Running', ru: 'Выполняется' });
  });
});
