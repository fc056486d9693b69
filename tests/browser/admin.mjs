// Drives Parley's admin page (/admin on the admin listener) in Debian's Chromium through
// playwright-core, as an operator would: log in with the token, find a user's session with
// the search box, kick it, switch to Users and sign a user out, and see Nodes. Prints OK when
// every step did what it should; with --screenshot FILE, saves the sessions view there.
//
//   node admin.mjs --admin http://127.0.0.1:PORT --token TOKEN --user alice@localhost/phone
import { chromium } from 'playwright-core';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
    return acc;
  }, []),
);
const fail = (msg) => { console.error(`FAIL: ${msg}`); process.exit(1); };
const timeout = 20000;

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 640 } });
  page.on('pageerror', (e) => console.error(`page error: ${e.stack || e}`));
  await page.goto(`${args.admin}/admin`);
  // A wrong token is refused on the page.
  await page.fill('#token', 'wrong-token-wrong-token');
  await page.click('#login button[type=submit]');
  await page.locator('#login-error').waitFor({ state: 'visible', timeout });
  await page.fill('#token', args.token);
  await page.click('#login button[type=submit]');
  await page.locator('#app').waitFor({ state: 'visible', timeout });
  await page.locator('#login').waitFor({ state: 'hidden', timeout });
  // The session is listed; the search narrows to it.
  const row = page.locator('#session-rows tr', { hasText: args.user });
  await row.first().waitFor({ timeout });
  if (args.screenshot) await page.screenshot({ path: args.screenshot });
  if (args.hostile) {
    // A resource made of markup is shown as text, never as markup.
    await page.locator('#session-rows td', { hasText: args.hostile }).first().waitFor({ timeout });
    if (await page.locator('#session-rows b').count() !== 0) fail('a resource became markup');
  }
  await page.fill('#search', args.user.split('@')[0]);
  await page.waitForFunction((u) => [...document.querySelectorAll('#session-rows tr')]
    .every((r) => r.textContent.includes(u)), args.user.split('@')[0], { timeout });
  console.log(`listed: ${(await row.first().textContent()).trim()}`);
  // Kick it: it leaves the live list by itself (the page reads it again every 2 s).
  await row.first().locator('button', { hasText: 'Kick' }).click();
  await row.first().waitFor({ state: 'detached', timeout });
  console.log('kicked');
  // The ended session shows under "revoked".
  await page.fill('#search', '');
  await page.selectOption('#status', 'revoked');
  await page.locator('#session-rows tr', { hasText: args.user }).first().waitFor({ timeout });
  // Users: sign one out.
  await page.click('nav button[data-view=users]');
  const user = page.locator('#user-rows tr', { hasText: args['signout'] });
  await user.first().waitFor({ timeout });
  await user.first().locator('button', { hasText: 'Sign out' }).click();
  await page.locator('#status-line', { hasText: 'Sign out: done' }).waitFor({ timeout });
  console.log('signed out');
  await page.click('nav button[data-view=nodes]');
  await page.locator('#node-rows tr').first().waitFor({ timeout });
  console.log(`node: ${(await page.locator('#node-rows tr').first().textContent()).trim()}`);
  console.log('OK');
} catch (e) {
  fail(e.stack || String(e));
} finally {
  await browser.close();
}
