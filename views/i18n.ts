// UI dictionaries. The labels of DESIGN.md §1 are exact; ru is the first users' language.
export type Locale = 'ru' | 'en';
export const LOCALES: Locale[] = ['ru', 'en'];

const en = {
  appName: 'Trainyard',
  training: 'Training',
  trainingTemplates: 'Training templates',
  processes: 'Processes',
  addTrainingProcess: 'Add training process',
  targetMachineAddress: 'Target machine address',
  save: 'Save',
  timeLeft: '~Time left',
  menu: '☰',
  login: 'Log in',
  logout: 'Log out',
  loginField: 'Login',
  password: 'Password',
  loginFailed: 'Wrong login or password.',
  tooManyAttempts: 'Too many attempts; wait a minute and try again.',
  name: 'Name',
  description: 'Description',
  command: 'Command',
  totalSteps: 'Total steps',
  actions: 'Actions',
  noTemplates: 'No training templates yet.',
  forbidden: 'You do not have permission to see this page.',
  notFound: 'Page not found.',
  error: 'Something went wrong.',
  back: 'Back',
  language: 'Language',
} as const;

export type MessageKey = keyof typeof en;

const ru: Record<MessageKey, string> = {
  appName: 'Trainyard',
  training: 'Обучение',
  trainingTemplates: 'Шаблоны обучения',
  processes: 'Процессы',
  addTrainingProcess: 'Добавить процессы обучения',
  targetMachineAddress: 'Адрес целевой машины',
  save: 'Сохранить',
  timeLeft: '~До окончания',
  menu: '☰',
  login: 'Войти',
  logout: 'Выйти',
  loginField: 'Логин',
  password: 'Пароль',
  loginFailed: 'Неверный логин или пароль.',
  tooManyAttempts: 'Слишком много попыток; подождите минуту и попробуйте снова.',
  name: 'Название',
  description: 'Описание',
  command: 'Команда',
  totalSteps: 'Всего шагов',
  actions: 'Действия',
  noTemplates: 'Шаблонов обучения пока нет.',
  forbidden: 'У вас нет прав на просмотр этой страницы.',
  notFound: 'Страница не найдена.',
  error: 'Что-то пошло не так.',
  back: 'Назад',
  language: 'Язык',
};

const dictionaries: Record<Locale, Record<MessageKey, string>> = { en, ru };

export type Translate = (key: MessageKey) => string;

export function translator(locale: Locale): Translate {
  const dictionary = dictionaries[locale];
  return (key) => dictionary[key];
}

export function pickLocale(value: unknown, fallback: Locale = 'ru'): Locale {
  return value === 'en' || value === 'ru' ? value : fallback;
}
