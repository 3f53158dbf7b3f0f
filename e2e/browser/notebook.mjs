// runHelloCell opens the notebook at url in notebook 6, waits for its
// kernel, runs its first cell (print(6*7)) and checks the page shows 42.
// Shared by run.mjs and portal.mjs.
export async function runHelloCell(page, url, step) {
  await page.goto(url);
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
}
