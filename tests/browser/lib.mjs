// Helpers of the console's browser tests: Chromium, pages that fail the test on console errors,
// signing in through the auth-server's form, and screenshots in both themes.
// scripts/test-console.sh starts the services and sets the environment read here.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { chromium } from 'playwright-core';

function need(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run the browser tests with scripts/test-console.sh`);
  }
  return value;
}

const trim = (url) => url.replace(/\/+$/, '');

export const env = {
  consoleUrl: trim(need('MCPGW_CONSOLE_URL')), // http://127.0.0.1:P/console
  authUrl: trim(need('MCPGW_AUTH_URL')),
  registryUrl: trim(process.env.MCPGW_REGISTRY_URL || new URL(need('MCPGW_CONSOLE_URL')).origin),
  adminUser: need('MCPGW_ADMIN_USER'),
  adminPassword: need('MCPGW_ADMIN_PASSWORD'),
  viewerUser: process.env.MCPGW_VIEWER_USER || '',
  viewerPassword: process.env.MCPGW_VIEWER_PASSWORD || '',
  demoMcpUrl: need('MCPGW_DEMO_MCP_URL'),
  adminKey: need('MCPGW_REGISTRY_ADMIN_KEY'),
  screenshotDir: need('MCPGW_SCREENSHOT_DIR'),
  chromium: process.env.MCPGW_CHROMIUM || '/usr/bin/chromium',
};

/** The console URL of a page: consoleUrl('/tokens') = http://…/console/tokens. */
export function consoleUrl(page = '/') {
  return env.consoleUrl + (page.startsWith('/') ? page : `/${page}`);
}

export const NAV_LINKS = ['Dashboard', 'Search', 'Audit log', 'Tokens', 'Policies', 'Register server'];
export const THEMES = ['light', 'dark'];
export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };
export const TIMEOUT = 10_000; // ms, for one expected change on a page

export async function launch() {
  return chromium.launch({
    executablePath: env.chromium,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * A new context and page that record console errors and uncaught page errors.
 * `page.mcpgw.errors` lists them; `expectConsoleError(page, regex)` allows the ones a test
 * provokes on purpose (e.g. Chrome's "Failed to load resource: … 422" for a refused form).
 * Confirmation dialogs are accepted.
 */
export async function newPage(browser, { viewport = DESKTOP } = {}) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  const state = { errors: [], allowed: [] };
  page.mcpgw = state;
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const loc = msg.location();
    state.errors.push(`console.error on ${page.url()}: ${msg.text()}${loc.url ? ` (${loc.url}:${loc.lineNumber})` : ''}`);
  });
  page.on('pageerror', (err) => state.errors.push(`uncaught error on ${page.url()}: ${err.stack || err}`));
  page.on('dialog', (dialog) => dialog.accept().catch(() => {}));
  return { context, page };
}

export function expectConsoleError(page, pattern) {
  page.mcpgw.allowed.push(pattern);
}

export function assertNoConsoleErrors(page) {
  const { errors, allowed } = page.mcpgw;
  const unexpected = errors.filter((e) => !allowed.some((p) => p.test(e)));
  assert.deepEqual(unexpected, [], `console or page errors:\n${unexpected.join('\n')}`);
}

/**
 * Run `fn({context, page})` with a fresh page (signed in as `user` unless null), then fail
 * the test on any console error; the context is closed in any case.
 */
export async function withPage(browser, fn, { user = 'admin', viewport } = {}) {
  const { context, page } = await newPage(browser, { viewport });
  try {
    if (user === 'admin') await signIn(page, env.adminUser, env.adminPassword);
    else if (user === 'viewer') await signIn(page, env.viewerUser, env.viewerPassword);
    await fn({ context, page });
    assertNoConsoleErrors(page);
  } catch (err) {
    await failureShot(page).catch(() => {});
    throw err;
  } finally {
    await context.close();
  }
}

let failures = 0;
async function failureShot(page) {
  if (page.isClosed()) return;
  failures += 1;
  await page.screenshot({ path: path.join(env.screenshotDir, `FAILED-${String(failures).padStart(2, '0')}.png`), fullPage: true });
}

/**
 * Open the console without a session, expect the auth-server's login form, sign in there and
 * land on the console again (auth-server /login → /oauth/authorize → the registry's
 * /console/callback on another origin: the login page's CSP must allow that redirect chain).
 */
export async function signIn(page, username, password, { start = '/' } = {}) {
  await page.goto(consoleUrl(start));
  await page.waitForURL((u) => u.href.startsWith(env.authUrl), { timeout: TIMEOUT }).catch(() => {
    throw new Error(`${consoleUrl(start)} without a session should redirect to the auth-server (${env.authUrl}); it is at ${page.url()}`);
  });
  await page.getByLabel('Username', { exact: true }).fill(username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  const ok = await page.waitForURL((u) => u.href.startsWith(env.consoleUrl), { timeout: TIMEOUT }).then(() => true, () => false);
  if (!ok) {
    const text = (await page.locator('body').innerText().catch(() => '')).slice(0, 300);
    const errors = page.mcpgw.errors.join('\n');
    throw new Error(`after "Sign in" the browser should return to the console; it is at ${page.url()}: ${text}${errors ? `\nconsole errors:\n${errors}` : ''}`);
  }
  await page.waitForLoadState('load');
}

/** The theme the page shows: <html data-theme>. */
export async function currentTheme(page) {
  return page.locator('html').getAttribute('data-theme');
}

/**
 * Show `theme`: with the "Toggle theme" button when the page has one (keeps what the page
 * shows, e.g. a minted token), else through localStorage and a reload. The system preference
 * (prefers-color-scheme) is set to match, for pages without a theme of their own (the
 * auth-server's). Returns false when the page has no `data-theme` at all.
 */
export async function setTheme(page, theme) {
  await page.emulateMedia({ colorScheme: theme });
  const now = await currentTheme(page);
  if (now === theme) return true;
  const toggle = page.getByRole('button', { name: 'Toggle theme', exact: true });
  if (now && (await toggle.count()) === 1) {
    await toggle.click();
  } else {
    if (!now) return false; // not a console page
    await page.evaluate((t) => localStorage.setItem('mcpgw-theme', t), theme);
    await page.reload();
  }
  await page.waitForFunction((t) => document.documentElement.dataset.theme === t, theme, { timeout: TIMEOUT });
  return true;
}

/**
 * Screenshots of what the page shows now, in both themes: `<name>-<theme>.png` at 1280x800 and
 * `<name>-<theme>-390.png` 390 px wide (whole page). The theme and viewport are put back.
 */
export async function shot(page, name) {
  fs.mkdirSync(env.screenshotDir, { recursive: true });
  const before = (await currentTheme(page)) || null;
  const viewport = page.viewportSize() || DESKTOP;
  try {
    for (const theme of THEMES) {
      await setTheme(page, theme);
      await page.setViewportSize(DESKTOP);
      await settle(page);
      await page.screenshot({ path: path.join(env.screenshotDir, `${name}-${theme}.png`) });
      await page.setViewportSize(PHONE);
      await settle(page);
      await page.screenshot({ path: path.join(env.screenshotDir, `${name}-${theme}-390.png`), fullPage: true });
    }
  } finally {
    await page.setViewportSize(viewport);
    if (before) await setTheme(page, before);
    await page.emulateMedia({ colorScheme: null });
  }
}

async function settle(page) {
  // Two frames: layout and transitions after a resize or theme change.
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
}

// ---- accessibility (axe-core) ------------------------------------------------------------------

export const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];
const BLOCKING_IMPACTS = new Set(['serious', 'critical']);
let axeSource;

/**
 * axe-core's violations (AXE_TAGS) of impact serious or critical on what the page shows now.
 * The console's CSP allows no inline script, so axe is not added as a <script>: its source is
 * evaluated through the DevTools protocol (page.evaluate), which the page's CSP does not govern.
 */
export async function axeViolations(page) {
  axeSource ??= fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
  if (!(await page.evaluate(() => typeof window.axe?.run === 'function'))) {
    await page.evaluate(axeSource);
  }
  const result = await page.evaluate(
    (tags) => window.axe.run(document, { runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'] }),
    AXE_TAGS,
  );
  return result.violations.filter((v) => BLOCKING_IMPACTS.has(v.impact));
}

/**
 * Fail unless axe finds no serious or critical violation on what the page shows, in both
 * themes (contrast differs between them). The message lists each rule id, impact, the target
 * selectors (the first 10) and axe's help text. The theme is put back.
 */
export async function assertAccessible(page, name) {
  const before = (await currentTheme(page)) || null;
  const problems = [];
  try {
    for (const theme of THEMES) {
      await setTheme(page, theme);
      await settle(page);
      for (const v of await axeViolations(page)) {
        const targets = v.nodes.map((n) => n.target.join(' ')).slice(0, 10);
        const more = v.nodes.length > targets.length ? ` (+${v.nodes.length - targets.length} more)` : '';
        const detail = v.nodes[0]?.failureSummary?.split('\n').slice(1, 2).join('').trim();
        problems.push(`${name} [${theme}] ${v.id} (${v.impact}): ${v.help} — ${targets.join(', ')}${more}${detail ? ` — e.g. ${detail}` : ''} (${v.helpUrl})`);
      }
    }
  } finally {
    if (before) await setTheme(page, before);
    await page.emulateMedia({ colorScheme: null });
  }
  assert.deepEqual(problems, [], `axe (${AXE_TAGS.join(', ')}) found serious or critical violations:\n${problems.join('\n')}`);
}

/** The layout every console page has. */
export async function checkLayout(page) {
  const where = page.url();
  const nav = page.locator('nav[aria-label="Main"]');
  assert.equal(await nav.count(), 1, `${where}: one <nav aria-label="Main">`);
  for (const name of NAV_LINKS) {
    assert.equal(await nav.getByRole('link', { name, exact: true }).count(), 1, `${where}: nav link "${name}"`);
  }
  assert.equal(await page.getByRole('button', { name: 'Toggle theme', exact: true }).count(), 1, `${where}: button "Toggle theme"`);
  assert.equal(await page.getByRole('button', { name: 'Sign out', exact: true }).count(), 1, `${where}: button "Sign out"`);
  assert.equal(await page.locator('main').count(), 1, `${where}: one <main>`);
  assert.equal(await page.locator('main h1').count(), 1, `${where}: one <h1> in <main>`);
  assert.equal(await page.locator('h1').count(), 1, `${where}: one <h1> on the page`);
  const theme = await currentTheme(page);
  assert.ok(theme === 'light' || theme === 'dark', `${where}: <html data-theme> is "${theme}", not light or dark`);
}

/** Wait until `locator`'s text (trimmed) equals `expected`; the last text in the error. */
export async function waitForText(locator, expected, { timeout = TIMEOUT, what = 'text' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = (await locator.first().textContent({ timeout: 1000 }).catch(() => null))?.trim();
    if (last === expected) return;
    if (Date.now() > deadline) {
      assert.fail(`${what}: expected "${expected}" within ${timeout / 1000} s, last seen ${JSON.stringify(last)}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The registry's REST API with the bootstrap admin key (to check what the UI did). */
export async function api(method, apiPath, body) {
  const res = await fetch(env.registryUrl + apiPath, {
    method,
    headers: { Authorization: `Bearer ${env.adminKey}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

/** The server record through the API (404 → undefined). */
export async function getServer(serverPath) {
  const res = await api('GET', `/api/v1/servers/${serverPath}`);
  if (res.status === 404) return undefined;
  assert.equal(res.status, 200, `GET /api/v1/servers/${serverPath}: ${res.text}`);
  return res.json;
}
