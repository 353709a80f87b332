// Permission names of docs/design.md §3 (the seed product's, kept as they are) and the
// built-in roles. Pure data: the Oso policy, the seed and the UI read it.
export const PERMISSIONS = {
  'templates.view': { ru: 'Шаблоны процесса обучения — Просмотр', en: 'Training templates — View' },
  'processes.view': { ru: 'Процессы обучения — Просмотр', en: 'Training processes — View' },
  'processes.create': { ru: 'Процессы обучения — Создание', en: 'Training processes — Create' },
  'processes.manage': { ru: 'Процессы обучения — Управление', en: 'Training processes — Manage' },
  'processes.delete': { ru: 'Процессы обучения — Удаление', en: 'Training processes — Delete' },
  'templates.manage': { ru: 'Шаблоны процесса обучения — Управление', en: 'Training templates — Manage' },
  'machines.view': { ru: 'Целевые машины — Просмотр', en: 'Target machines — View' },
  'machines.manage': { ru: 'Целевые машины — Управление', en: 'Target machines — Manage' },
  'users.manage': { ru: 'Пользователи — Управление', en: 'Users — Manage' },
  'notifications.manage': { ru: 'Уведомления — Управление', en: 'Notifications — Manage' },
} as const;

export type Permission = keyof typeof PERMISSIONS;
export const ALL_PERMISSIONS = Object.keys(PERMISSIONS) as Permission[];

/** Template-scoped grants carry only these; the rest are global (docs/design.md §3). */
export const TEMPLATE_SCOPED: ReadonlySet<Permission> = new Set<Permission>([
  'templates.view',
  'processes.view',
  'processes.create',
  'processes.manage',
  'processes.delete',
]);

const viewer: Permission[] = ['templates.view', 'processes.view', 'machines.view'];

export const BUILTIN_ROLES: Record<'viewer' | 'operator' | 'admin', Permission[]> = {
  viewer,
  operator: [...viewer, 'processes.create', 'processes.manage'],
  admin: ALL_PERMISSIONS,
};
