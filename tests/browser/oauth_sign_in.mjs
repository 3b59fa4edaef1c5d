// The browser step of an MCP client's OAuth sign-in, as a person would do it: open the
// authorization URL the client printed, sign in on the auth-server's login page with a local
// user, allow the client on the page that names it (unless the user allowed it before: then
// the browser goes straight on, through the login form's redirects), and stop once the browser
// is sent to the client's loopback redirect URI (the client's own listener takes the code).
//
//   node oauth_sign_in.mjs USERNAME PASSWORD AUTHORIZATION_URL   (the URL last: the client appends it)
//
// Headless Debian Chromium through playwright-core (installed by scripts/deps/browser.sh);
// MCPGW_CHROMIUM overrides the executable. Prints one JSON line: {"redirected": URL without
// its query, "allow_page": whether the page was shown} or {"error": …} (exit 1).
import { chromium } from 'playwright-core';

const [username, password, url] = process.argv.slice(2);
if (!url || !username || !password) {
  console.log(JSON.stringify({ error: 'usage: oauth_sign_in.mjs USERNAME PASSWORD URL' }));
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.MCPGW_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await (await browser.newContext()).newPage();
  page.setDefaultTimeout(15_000);
  const redirect = new URL(new URL(url).searchParams.get('redirect_uri'));
  const atClient = (u) => u.origin === redirect.origin && u.pathname === redirect.pathname;
  await page.goto(url);
  await page.fill('input[name="username"]', username);
  await page.fill('input[name="password"]', password);
  const allow = page.locator('button[name="decision"][value="allow"]');
  const shown = allow.waitFor().then(() => true);
  const straight = page.waitForURL((u) => atClient(u)).then(() => false);
  shown.catch(() => {});
  straight.catch(() => {});
  await page.click('button[type="submit"]');
  const allowPage = await Promise.race([shown, straight]);
  if (allowPage) {
    const arrived = page.waitForURL((u) => atClient(u));
    await allow.click();
    await arrived;
  }
  const at = new URL(page.url());
  console.log(JSON.stringify({ redirected: at.origin + at.pathname, allow_page: allowPage }));
} catch (e) {
  console.log(JSON.stringify({ error: String(e && e.message || e) }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
