// Drives Debian's chromium through spinbook's front door as a person would,
// for e2e/browser_test.go. Everything it needs comes from the environment,
// never argv (the password must not show in `ps`):
//
//   SPINBOOK_URL         the server's URL, as `spinbook up` printed it
//   SPINBOOK_PASSWORD    the login password
//   SPINBOOK_NOTEBOOK    a notebook in the workspace whose first cell prints 42
//   SPINBOOK_EXPECT      "notebook" (default): log in, run the cell, log out;
//                        "refused": the server must refuse this browser
//   SPINBOOK_SCREENSHOT  where to save a PNG of the logged-in notebook ("": none)
//   SPINBOOK_PROFILE     a fresh directory for the browser profile
//   CHROMIUM             the browser (default /usr/bin/chromium)
//
// It prints one line per step and exits non-zero on the first failure.
import { chromium } from 'playwright-core';

const env = process.env;
const base = env.SPINBOOK_URL;
const expectMode = env.SPINBOOK_EXPECT || 'notebook';
const timeout = 60_000;

function step(msg) {
  console.log(`browser: ${msg}`);
}

async function main() {
  if (!base || !env.SPINBOOK_PROFILE) {
    throw new Error('SPINBOOK_URL and SPINBOOK_PROFILE must be set');
  }
  const context = await chromium.launchPersistentContext(env.SPINBOOK_PROFILE, {
    executablePath: env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
    ignoreHTTPSErrors: base.startsWith('https:'), // a self-signed certificate
    viewport: { width: 1100, height: 640 },
    deviceScaleFactor: 1,
  });
  context.setDefaultTimeout(timeout);
  try {
    const page = context.pages()[0] || (await context.newPage());
    if (expectMode === 'refused') {
      await refused(page);
    } else {
      await notebook(page, context);
    }
  } finally {
    await context.close();
  }
}

// refused: a browser from an address outside access.allow sees a page that
// says what happened and what to do, and nothing of the config.
async function refused(page) {
  const resp = await page.goto(base);
  step(`opened ${base}: ${resp.status()}`);
  if (resp.status() !== 403) throw new Error(`status ${resp.status()}, want 403`);
  const text = await page.locator('main').innerText();
  for (const want of ['Not allowed', "not on this server's allowlist", 'access.allow', 'Your address: 127.0.0.1']) {
    if (!text.includes(want)) throw new Error(`the refusal page lacks ${JSON.stringify(want)}:\n${text}`);
  }
  step('refused with a page that says why');
}

async function notebook(page, context) {
  // 1. The URL leads to the login page.
  await page.goto(base);
  await page.waitForURL(/\/spinbook\/login/);
  await page.getByLabel('Password').waitFor();
  step(`login page at ${page.url()}`);

  // 2. A wrong password says so, on the page.
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('alert').filter({ hasText: 'Wrong password.' }).waitFor();
  step('a wrong password is refused with "Wrong password."');

  // 3. The right one leads into Jupyter.
  await page.getByLabel('Password').fill(env.SPINBOOK_PASSWORD);
  await Promise.all([
    page.waitForURL((u) => !u.pathname.startsWith('/spinbook/')),
    page.getByRole('button', { name: 'Log in' }).click(),
  ]);
  await page.locator('#notebook_list, #ipython-main-app, .jp-LabShell').first().waitFor();
  step(`logged in: ${page.url()}`);
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name.includes('spinbook'));
  if (!session || !session.httpOnly) throw new Error(`no HttpOnly session cookie: ${JSON.stringify(cookies.map((c) => c.name))}`);
  if (base.startsWith('https:') && (!session.name.startsWith('__Host-') || !session.secure)) {
    throw new Error(`over https the session cookie must be __Host- and Secure: ${session.name}, secure=${session.secure}`);
  }
  step(`session cookie ${session.name} (HttpOnly${session.secure ? ', Secure' : ''})`);

  // 4. Open the notebook, wait for its kernel, run the cell.
  await page.goto(new URL(`notebooks/${env.SPINBOOK_NOTEBOOK}`, base).href);
  await page.locator('#kernel_indicator_icon.kernel_idle_icon').waitFor({ timeout: 120_000 });
  step('notebook open, kernel idle');
  const cell = page.locator('.cell.code_cell').first();
  await cell.locator('.CodeMirror').click();
  await page.keyboard.press('Shift+Enter');
  const output = cell.locator('.output_area .output_subarea');
  await output.filter({ hasText: '42' }).waitFor();
  const text = (await output.innerText()).trim();
  if (text !== '42') throw new Error(`the cell printed ${JSON.stringify(text)}, want "42"`);
  step('ran print(6*7) and read 42 in the page');

  if (env.SPINBOOK_SCREENSHOT) {
    await page.mouse.move(0, 0);
    await page.screenshot({ path: env.SPINBOOK_SCREENSHOT, clip: { x: 0, y: 0, width: 1100, height: 300 } });
    step(`screenshot saved to ${env.SPINBOOK_SCREENSHOT}`);
  }

  // 5. Jupyter's Logout button ends the session at the front door.
  await Promise.all([
    page.waitForURL(/\/spinbook\/login\?logged_out=1/),
    page.locator('#logout').click(),
  ]);
  await page.getByText('You are logged out.').waitFor();
  step('logged out with Jupyter\'s button: back at the login page');
  const api = await page.request.get(new URL('api/contents', base).href);
  if (api.status() !== 401) throw new Error(`the API after logout: ${api.status()}, want 401`);
  step('the API refuses the browser after logout');
}

main().catch((err) => {
  console.error(`browser: FAILED: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
