// The team portal in Chromium, for e2e/portal_test.go (run.mjs with
// SPINBOOK_EXPECT=portal). From the environment, never argv:
//
//   SPINBOOK_URL        the portal's URL
//   PERSON_A, PERSON_B  the two people (default alice, an admin, and bob, not)
//   A_PASSWORD          A's password at the identity provider
//   B_PASSWORD          B's
//   SPINBOOK_NOTEBOOK   a notebook of the workspace whose first cell prints 42
//   SHOT_MINE, SHOT_TEAM  where to save PNGs of My server and Team
//   SPINBOOK_PROFILE    a directory for the browser profiles
//   CHROMIUM            the browser
//
// alice signs in at the provider, starts her server and watches its
// progress, opens it without a second password and runs a cell; bob sees
// only his own, gets 403/404 on alice's by URL and by API, and starts his;
// the script then prints "browser: waiting for bob's work" and reads a
// line (the test writes into bob's workspace); alice, an admin, sees both
// on Team with their cost and stops bob's, then her own.
import { chromium } from 'playwright-core';
import { runHelloCell } from './notebook.mjs';

const env = process.env;
const portalURL = env.SPINBOOK_URL;
const timeout = 60_000;
const A = env.PERSON_A || 'alice';
const B = env.PERSON_B || 'bob';

export async function portal(step, nextLine) {
  const browser = await chromium.launch({
    executablePath: env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu', '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
  try {
    const alice = await person(browser, A, env.A_PASSWORD, step);
    await start(alice, A, step);
    if (env.SHOT_MINE) {
      await alice.screenshot({ path: env.SHOT_MINE, fullPage: true });
      step(`screenshot of My server saved`);
    }
    await open(alice, step);

    const bob = await person(browser, B, env.B_PASSWORD, step);
    await refusedToBob(bob, step);
    await start(bob, B, step);

    step(`waiting for ${B}'s work`);
    await nextLine();

    await stopBobAsAdmin(alice, step);
    await alice.goto(portalURL);
    await alice.getByRole('button', { name: 'Stop (saves first)' }).click();
    await alice.getByRole('button', { name: 'Start' }).waitFor({ timeout: 180_000 });
    step(`${A} stopped their own server`);
  } finally {
    await browser.close();
  }
}

// person signs account in at the identity provider, from the portal's
// sign-in page, and returns their page on My server.
async function person(browser, account, password, step) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 }, deviceScaleFactor: 1, colorScheme: 'light' });
  context.setDefaultTimeout(timeout);
  const page = await context.newPage();
  await page.goto(portalURL);
  await page.waitForURL(/\/login$/);
  await page.getByRole('link', { name: 'Sign in with your company account' }).click();
  await page.locator('#login').waitFor();
  step(`${account}: at the provider's login page ${new URL(page.url()).origin}`);
  await page.locator('#login').fill(account);
  await page.locator('#password').fill(password);
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(portalURL) && u.pathname === '/'),
    page.locator('#password').press('Enter'),
  ]);
  await page.getByRole('heading', { name: 'My server', level: 1 }).waitFor();
  step(`${account}: signed in, on My server`);
  return page;
}

// start starts the person's server with size small, watching the progress.
async function start(page, account, step) {
  await page.getByLabel('Size').selectOption('small');
  await page.getByRole('button', { name: 'Start' }).click();
  const first = page.locator('ol.progress li').first();
  await first.waitFor();
  step(`${account}: progress: ${(await first.innerText()).trim()}`);
  await page.getByRole('button', { name: 'Open' }).and(page.locator(':enabled')).waitFor({ timeout: 180_000 });
  const steps = await page.locator('ol.progress li').count();
  step(`${account}: server running after ${steps} progress steps`);
}

// open takes alice into her server with Open, and runs a cell there.
async function open(page, step) {
  await Promise.all([
    page.waitForURL((u) => !u.href.startsWith(portalURL), { timeout }),
    page.getByRole('button', { name: 'Open' }).click(),
  ]);
  await page.locator('#notebook_list, #ipython-main-app, .jp-LabShell, .jp-DirListing').first().waitFor();
  const at = new URL(page.url());
  if (at.pathname.startsWith('/spinbook/login')) throw new Error('Open led to the password login');
  step(`${A}: opened their server without a password: ${at.origin}${at.pathname}`);
  await runHelloCell(page, new URL(`notebooks/${env.SPINBOOK_NOTEBOOK}`, at.origin).href, step);
  await page.goto(portalURL);
}

// refusedToBob: bob sees his own server only, and alice's is refused to
// him by URL and by API.
async function refusedToBob(page, step) {
  const mine = await page.locator('main').innerText();
  if (mine.includes(A)) throw new Error(`${B}'s page mentions ${A}`);
  const team = await page.goto(new URL('/team', portalURL).href);
  if (team.status() !== 403) throw new Error(`${B} on /team: ${team.status()}, want 403`);
  const events = await page.goto(new URL(`/servers/${A}/events`, portalURL).href);
  if (events.status() !== 404) throw new Error(`${B} on ${A}'s events: ${events.status()}, want 404`);
  step(`${B}: /team is 403, ${A}'s server by URL 404`);

  await page.goto(new URL('/tokens', portalURL).href);
  await page.getByLabel('Name').fill('e2e');
  await page.getByRole('button', { name: 'Make token' }).click();
  const token = await page.locator('#newtoken').inputValue();
  const auth = { Authorization: `Bearer ${token}` };
  const status = await page.request.get(new URL(`/api/v1/servers/${A}`, portalURL).href, { headers: auth });
  const stop = await page.request.post(new URL(`/api/v1/servers/${A}/stop`, portalURL).href, { headers: auth, data: {} });
  const list = await (await page.request.get(new URL('/api/v1/servers', portalURL).href, { headers: auth })).json();
  if (status.status() !== 404 || stop.status() !== 404) throw new Error(`${B}'s API on ${A}'s server: ${status.status()}, ${stop.status()}; want 404`);
  if (list.some((s) => s.user !== B)) throw new Error(`${B}'s API lists others: ${JSON.stringify(list.map((s) => s.user))}`);
  step(`${B}: the API answers 404 for ${A}'s server and lists only their own`);
  await page.goto(portalURL);
}

// stopBobAsAdmin: alice, an admin, sees both servers with their cost on
// Team and stops bob's (the portal saves his work first).
async function stopBobAsAdmin(page, step) {
  await page.goto(new URL('/team', portalURL).href);
  for (const who of [A, B]) {
    await page.getByRole('rowheader', { name: who }).waitFor();
  }
  const bobRow = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: B }) });
  const cost = await bobRow.innerText();
  if (!/\$\d+\.\d\d/.test(cost)) throw new Error(`no cost on ${B}'s row: ${cost}`);
  step(`admin: Team shows ${A} and ${B} with their cost (${cost.replace(/\s+/g, ' ').trim()})`);
  if (env.SHOT_TEAM) {
    await page.screenshot({ path: env.SHOT_TEAM, fullPage: true });
    step('screenshot of Team saved');
  }
  await page.getByRole('button', { name: `Stop ${B}'s server (saves first)` }).click();
  const deadline = Date.now() + 180_000;
  for (;;) {
    await page.goto(new URL('/team', portalURL).href);
    const row = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: B }) });
    if ((await row.count()) === 0 || !(await row.innerText()).includes('running')) break;
    if (Date.now() > deadline) throw new Error(`${B}'s server still runs 3 minutes after the admin stopped it`);
    await page.waitForTimeout(1000);
  }
  step(`admin: stopped ${B}'s server`);
}
