// Administration → Users in a real browser (Debian's Chromium through playwright-core)
// against the real server and PostgreSQL, in Russian: the admin creates an operator of one
// template, reads the one-time password off the page, the new user logs in in a second
// browser and sees the template; once the admin revokes the grant, the user's next
// request no longer shows it.
import type { FastifyInstance } from 'fastify';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, serveStack, logIn, submitLogin, type TestBrowser } from '../support/browser.js';
import { makeTemplate, startStack, uid, type Stack } from '../support/stack.js';

let stack: Stack;
let app: FastifyInstance;
let baseUrl: string;
let adminBrowser: TestBrowser | undefined;
let userBrowser: TestBrowser | undefined;

beforeAll(async () => {
  stack = await startStack({ worker: false });
  ({ app, baseUrl } = await serveStack(stack));
  adminBrowser = await launchChromium();
  userBrowser = await launchChromium();
});

afterAll(async () => {
  await adminBrowser?.close();
  await userBrowser?.close();
  await app?.close().catch(() => undefined);
  await stack?.close().catch(() => undefined);
});

const userRow = (page: Page, login: string) => page.locator(`#users tr[data-login="${login}"]`);

describe('users and roles in a browser', () => {
  it('creates an operator in the UI, who logs in, sees their template, and loses it once the role is revoked', async () => {
    const template = await makeTemplate(stack, { name: `Шаблон оператора ${uid()}`, command: 'true' });
    const login = `ui-op-${uid()}`;

    // The admin, in Russian, from the navigation to the create form.
    const admin = await adminBrowser!.context.newPage();
    await logIn(admin, baseUrl);
    await admin.getByRole('link', { name: 'Администрирование' }).click();
    await admin.getByRole('link', { name: 'Пользователи' }).click();
    await admin.waitForURL(/\/admin\/users$/);
    const form = admin.locator('#create-user');
    await form.getByLabel('Логин').fill(login);
    await form.getByLabel('Имя').fill('Оператор из браузера');
    await form.getByLabel(/^Роль/).selectOption({ label: 'operator' });
    await form.getByLabel('Шаблон').selectOption({ label: template.name });
    await form.getByRole('button', { name: 'Создать пользователя' }).click();

    const shown = admin.locator('#one-time-password');
    await expect.poll(() => shown.textContent()).toContain(`Пользователь ${login} создан`);
    const password = await shown.locator('input').inputValue();
    expect(password.length).toBeGreaterThanOrEqual(16);
    const row = userRow(admin, login);
    await expect.poll(() => row.textContent()).toContain('Оператор из браузера');
    expect(await row.locator('li').first().textContent()).toContain('operator');

    // The new user, in a browser of their own, sees the template they were granted.
    const user = await userBrowser!.context.newPage();
    await user.goto(`${baseUrl}/login?lang=ru`);
    await submitLogin(user, { login, password });
    await user.waitForURL((url) => !url.pathname.startsWith('/login'));
    await user.goto(`${baseUrl}/training/templates`);
    await expect.poll(() => user.getByText(template.name).count()).toBe(1);
    // Not an admin: the administration pages are closed to them.
    const refused = await user.goto(`${baseUrl}/admin/users`);
    expect(refused?.status()).toBe(403);

    // The admin sees the login recorded, and revokes the grant.
    await admin.reload();
    expect(await userRow(admin, login).locator('time').count()).toBe(1);
    await userRow(admin, login).getByRole('button', { name: 'Отозвать' }).click();
    await admin.waitForURL(/\/admin\/users$/);
    await expect.poll(() => userRow(admin, login).textContent()).toContain('без роли');

    // The user's very next request is made without the role.
    const after = await user.goto(`${baseUrl}/training/templates`);
    expect(after?.status()).toBe(403);
    expect(await user.getByText(template.name).count()).toBe(0);
    expect(await user.content()).toContain('У вас нет прав на просмотр этой страницы.');
  });
});
