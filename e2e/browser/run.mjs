// Drives Debian's chromium through spinbook's front door as a person would,
// for e2e/browser_test.go. Everything it needs comes from the environment,
// never argv (the password must not show in `ps`):
//
//   SPINBOOK_URL         the server's URL, as `spinbook up` printed it
//   SPINBOOK_PASSWORD    the login password
//   SPINBOOK_NOTEBOOK    a notebook in the workspace whose first cell prints 42
//   SPINBOOK_EXPECT      "portal": the team portal, see portal.mjs (which
//                        reads its own variables);
//                        "notebook" (default): notebook 6: log in, run the
//                        cell, log out with Jupyter's button;
//                        "lab4" / "notebook7": JupyterLab 4 / Notebook 7:
//                        log in, run the cell, `git status` in a terminal,
//                        the idle banner, log out with File > Log Out;
//                        "refused": the server must refuse this browser
//   SPINBOOK_SCREENSHOT  where to save a PNG of the logged-in notebook ("": none)
//   SPINBOOK_PROFILE     a fresh directory for the browser profile
//   SPINBOOK_FAILURE_SCREENSHOT  where to save a PNG of the page when a step
//                        fails ("": none)
//   SPINBOOK_BRANCH      lab4/notebook7: the branch `git status` must be on
//   CHROMIUM             the browser (default /usr/bin/chromium)
//
// The tests pass their own environment on, so SPINBOOK_FAILURE_SCREENSHOT=
// /tmp/x.png go test ./e2e -run TestBrowserLab keeps a picture of a failure.
//
// In the lab4 and notebook7 modes, once the page has been left alone it
// prints "browser: waiting for the idle warning" and reads a line from
// stdin: the test answers when `spinbook status` warns, and the script
// then reloads the page and looks for the banner.
//
// It prints one line per step and exits non-zero on the first failure.
import { chromium } from 'playwright-core';
import { runHelloCell } from './notebook.mjs';

const env = process.env;
const base = env.SPINBOOK_URL;
const expectMode = env.SPINBOOK_EXPECT || 'notebook';
const timeout = 60_000;

function step(msg) {
  console.log(`browser: ${msg}`);
}

let failurePage; // set when SPINBOOK_FAILURE_SCREENSHOT asks for a picture of a failure

async function main() {
  if (expectMode === 'portal') {
    const { portal } = await import('./portal.mjs');
    return portal(step, nextLine);
  }
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
    if (env.SPINBOOK_FAILURE_SCREENSHOT) {
      failurePage = page;
    }
    if (expectMode === 'refused') {
      await refused(page);
    } else if (expectMode === 'lab4' || expectMode === 'notebook7') {
      await jupyterServer2(page, context, expectMode);
    } else {
      await notebook(page, context);
    }
  } catch (err) {
    if (failurePage) {
      await failurePage.screenshot({ path: env.SPINBOOK_FAILURE_SCREENSHOT }).catch(() => {});
      step(`failure screenshot saved to ${env.SPINBOOK_FAILURE_SCREENSHOT}`);
    }
    throw err;
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

// login goes through the front door's login page: a wrong password is
// refused, the right one leads into Jupyter with an HttpOnly cookie.
async function login(page, context) {
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
  // notebook 6's file list or notebook, JupyterLab's shell, Notebook 7's
  // file list.
  await page.locator('#notebook_list, #ipython-main-app, .jp-LabShell, .jp-DirListing').first().waitFor();
  step(`logged in: ${page.url()}`);
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name.includes('spinbook'));
  if (!session || !session.httpOnly) throw new Error(`no HttpOnly session cookie: ${JSON.stringify(cookies.map((c) => c.name))}`);
  if (base.startsWith('https:') && (!session.name.startsWith('__Host-') || !session.secure)) {
    throw new Error(`over https the session cookie must be __Host- and Secure: ${session.name}, secure=${session.secure}`);
  }
  step(`session cookie ${session.name} (HttpOnly${session.secure ? ', Secure' : ''})`);
}

async function notebook(page, context) {
  await login(page, context);

  // 4. Open the notebook, wait for its kernel, run the cell.
  await runHelloCell(page, new URL(`notebooks/${env.SPINBOOK_NOTEBOOK}`, base).href, step);

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
  await refusedAfterLogout(page);
}

async function refusedAfterLogout(page) {
  const api = await page.request.get(new URL('api/contents', base).href);
  if (api.status() !== 401) throw new Error(`the API after logout: ${api.status()}, want 401`);
  step('the API refuses the browser after logout');
}

// jupyterServer2 is a person on JupyterLab 4 (mode "lab4") or Notebook 7
// ("notebook7"), both on jupyter_server 2 and both built from JupyterLab's
// parts: the same notebook, terminal and menu widgets, in one page (Lab)
// or one page per document (Notebook 7).
async function jupyterServer2(page, context, mode) {
  await page.setViewportSize({ width: 1280, height: 720 });
  await login(page, context);
  await page.locator(mode === 'lab4' ? '.jp-LabShell' : '.jp-DirListing').first().waitFor();
  step(`${mode} page: ${new URL(page.url()).pathname}`);

  // Settings, as a person sets them in Settings > Settings Editor (they
  // apply to the pages loaded next): the terminal's screen-reader mode,
  // which keeps its rows as text in the page for the script to read (it
  // draws them on a canvas otherwise), and no news pop-up.
  await putSetting(page, '@jupyterlab/terminal-extension:plugin', { screenReaderMode: true });
  await putSetting(page, '@jupyterlab/apputils-extension:notification', { fetchNews: 'false' });
  step('settings saved: terminal screen-reader mode, no news');

  // 1. Open the workspace's notebook (from the team repo) and run its cell.
  const nbPath = mode === 'lab4' ? `lab/tree/${env.SPINBOOK_NOTEBOOK}` : `notebooks/${env.SPINBOOK_NOTEBOOK}`;
  const kernelSocket = page.waitForEvent('websocket', {
    predicate: (ws) => /\/api\/kernels\/[^/]+\/channels/.test(ws.url()),
    timeout: 120_000,
  });
  await page.goto(new URL(nbPath, base).href);
  const panel = page.locator('.jp-NotebookPanel:visible');
  const cell = panel.locator('.jp-CodeCell').first();
  await cell.locator('.cm-content').waitFor();
  step(`notebook open: ${new URL(page.url()).pathname}`);
  // The toolbar says "idle", and /api/kernels counts a connection, before
  // the page has a connection to the kernel of its own; a cell run before
  // then does nothing at all (the prompt stays "[ ]:", no error). Wait for
  // the page's kernel websocket to carry a message.
  const socket = await kernelSocket;
  await socket.waitForEvent('framereceived', { timeout: 120_000 });
  step('kernel connected');
  await cell.locator('.cm-content').click();
  await page.keyboard.press('Shift+Enter');
  const output = cell.locator('.jp-OutputArea-output');
  await output.filter({ hasText: '42' }).waitFor();
  const text = (await output.innerText()).trim();
  if (text !== '42') throw new Error(`the cell printed ${JSON.stringify(text)}, want "42"`);
  step('ran print(6*7) and read 42 in the page');
  await panel.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').waitFor();

  if (env.SPINBOOK_SCREENSHOT) {
    await page.mouse.move(0, 0);
    await page.screenshot({ path: env.SPINBOOK_SCREENSHOT });
    step(`screenshot saved to ${env.SPINBOOK_SCREENSHOT}`);
  }

  // 2. A terminal, opened from Jupyter's menus, starts in the workspace:
  // `git status` there shows the team repo's branch.
  let term = page;
  if (mode === 'lab4') {
    await menu(page, ['File', 'New', 'Terminal']);
  } else {
    // Notebook 7 opens the terminal in a tab of its own.
    [term] = await Promise.all([context.waitForEvent('page'), menu(page, ['File', 'New', 'Terminal'])]);
  }
  const xterm = term.locator('.jp-Terminal:visible .xterm');
  await xterm.waitFor();
  await xterm.click();
  await term.keyboard.type('git status\n');
  const want = `On branch ${env.SPINBOOK_BRANCH || 'main'}`;
  const shown = await term.waitForFunction(
    ([el, want]) => {
      const tree = el.querySelector('.xterm-accessibility-tree');
      const t = tree ? [...tree.children].map((row) => row.textContent).join('\n') : '';
      return t.includes(want) && t;
    },
    [await xterm.elementHandle(), want],
  );
  const screen = await shown.jsonValue();
  step(`git status in the terminal says ${JSON.stringify(want)}:\n${screen.trim()}`);
  if (term !== page) await term.close();

  // 3. Left alone, the server warns: the page, reloaded, shows the banner.
  step('waiting for the idle warning');
  await nextLine();
  await page.reload();
  const banner = page.locator('#spinbook-banner');
  await banner.waitFor({ timeout: 20_000 });
  const said = (await banner.innerText()).replace(/\s*Hide$/, '').trim();
  for (const want of ['This server stops at', 'if it stays idle', 'spinbook extend']) {
    if (!said.includes(want)) throw new Error(`the banner lacks ${JSON.stringify(want)}: ${JSON.stringify(said)}`);
  }
  step(`banner: ${said}`);
  await page.locator(mode === 'lab4' ? '.jp-LabShell' : '.jp-NotebookPanel').first().waitFor();
  step('Jupyter loads under the banner');
  // It covers the menu bar; its Hide button takes it away.
  await banner.getByRole('button', { name: 'Hide' }).click();
  await banner.waitFor({ state: 'detached' });
  step('the banner\'s Hide button took it off the page');

  // 4. Log out with Jupyter's own File > Log Out, through the front door.
  await menu(page, ['File', 'Log Out']);
  await finishLogout(page);
  step('logged out with File > Log Out: back at the login page');
  await refusedAfterLogout(page);
}

// putSetting saves a JupyterLab setting through the page's session, with
// Jupyter's XSRF token as the page sends it.
async function putSetting(page, plugin, values) {
  const xsrf = (await page.context().cookies()).find((c) => c.name === '_xsrf');
  if (!xsrf) throw new Error('no _xsrf cookie after loading Jupyter');
  const resp = await page.request.put(new URL(`lab/api/settings/${plugin}`, base).href, {
    headers: { 'X-XSRFToken': xsrf.value, 'Content-Type': 'application/json' },
    data: { raw: JSON.stringify(values) },
  });
  if (!resp.ok()) throw new Error(`PUT settings ${plugin}: ${resp.status()} ${await resp.text()}`);
}

// menu clicks through Jupyter's menu bar: the top menu, then its items.
async function menu(page, path) {
  await page.locator('.lm-MenuBar-item').filter({ hasText: new RegExp(`^${path[0]}$`) }).click();
  for (const [i, label] of path.slice(1).entries()) {
    const item = page.locator('.lm-Menu:visible .lm-Menu-item').filter({
      has: page.locator('.lm-Menu-itemLabel', { hasText: new RegExp(`^${label}$`) }),
    }).last();
    if (i < path.length - 2) await item.hover();
    else await item.click();
  }
}

// finishLogout waits until a logout ends on the front door's login page,
// confirming on the way if the front door asks first.
async function finishLogout(page) {
  await page.waitForURL((u) => u.pathname.startsWith('/spinbook/') || u.pathname === '/logout');
  if (!new URL(page.url()).pathname.startsWith('/spinbook/login')) {
    await Promise.all([
      page.waitForURL(/\/spinbook\/login/),
      page.getByRole('button', { name: /log ?out/i }).click(),
    ]);
  }
  await page.getByLabel('Password').waitFor();
}

// nextLine resolves with the next line the test writes to stdin.
function nextLine() {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (chunk) => {
      buf += chunk;
      const i = buf.indexOf('\n');
      if (i < 0) return;
      process.stdin.off('data', onData);
      process.stdin.off('end', onEnd);
      process.stdin.destroy(); // a stdin left open would keep node running
      resolve(buf.slice(0, i));
    };
    const onEnd = () => reject(new Error('stdin closed before the test answered'));
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', onData);
    process.stdin.on('end', onEnd);
    process.stdin.resume();
  });
}

main().catch((err) => {
  console.error(`browser: FAILED: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
