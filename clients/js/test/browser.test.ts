// The demo page in headless Chromium (Debian's package, driven by playwright-core): cells change
// without a reload when SQL writes a submission and an upload, and needs-marking clears when the
// upload is deleted. Saves docs/screenshot.png for the README.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { answer, deleteUpload, sql, startStack, upload, type Stack } from './support/stack.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SCREENSHOT = fileURLToPath(new URL('../../../docs/screenshot.png', import.meta.url));

let stack: Stack;
let context: BrowserContext;
let profile: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (make test does this)`);
  }
  if (!existsSync(fileURLToPath(new URL('../dist/demo-page.js', import.meta.url)))) {
    throw new Error('the demo page is not built: npm run build (make install-js does this)');
  }
  stack = await startStack();
  profile = mkdtempSync(join(tmpdir(), 'results-realtime-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1100, height: 760 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}, 120_000);

afterAll(async () => {
  await context?.close();
  await stack?.stop();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

const cell = (page: Page, pupil: string, activity: string) =>
  page.locator(`.cell[data-pupil="${pupil}"][data-activity="${activity}"]`);

describe('the demo page', () => {
  it('updates cells live and clears needs-marking when an upload is deleted', async () => {
    const info = stack.info;
    const group = info.groups[0];
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(String(error)));
    await page.goto(group.pageUrl);
    await page.locator('#connection[data-state="subscribed"]').waitFor({ timeout: 15_000 });
    const [writer, uploader] = group.pupilIds;
    const text = cell(page, writer, 'act-define');
    const photo = cell(page, uploader, 'act-diagram');
    await expect.poll(() => text.getAttribute('data-status'), { timeout: 15_000 }).toBe('not_submitted');
    // A marker on window proves the page is never reloaded.
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));

    await answer(info, writer, 'act-define', 'Light + water + CO2 -> glucose + oxygen');
    await upload(info, uploader, 'act-diagram', 'leaf.jpg');
    await expect.poll(() => text.getAttribute('data-status'), { timeout: 15_000 }).toBe('submitted');
    await expect.poll(() => photo.getAttribute('data-has-upload'), { timeout: 15_000 }).toBe('true');
    expect(await text.getAttribute('data-needs-marking')).toBe('true');
    expect(await photo.getAttribute('data-needs-marking')).toBe('true');
    expect(await photo.textContent()).toContain('⇪1');
    // A few marked cells too, so the screenshot shows every state.
    const [aiMarked, teacherMarked] = group.pupilIds.slice(2, 4);
    for (const [pupil, teacherScore] of [[aiMarked, null], [teacherMarked, 9]] as const) {
      await answer(info, pupil, 'act-explain', 'In the chloroplasts');
      await sql(
        info,
        `update public.submissions set ai_score = 7, ai_model = 'marker-demo-1',
           ai_marked_at = now(), teacher_score = nullif(:'teacher', '')::numeric,
           teacher_marked_at = case when :'teacher' = '' then null else now() end
         where activity_id = 'act-explain' and user_id = :'pupil';`,
        { pupil, teacher: teacherScore ?? '' },
      );
    }
    const teacherCell = cell(page, teacherMarked, 'act-explain');
    await expect.poll(() => teacherCell.getAttribute('data-status'), { timeout: 15_000 }).toBe('teacher_marked');
    await expect
      .poll(() => cell(page, aiMarked, 'act-explain').getAttribute('data-status'), { timeout: 15_000 })
      .toBe('ai_marked');
    expect(await teacherCell.textContent()).toContain('★ 9');
    // What a screen reader gets: row headers, each cell in words (not glyphs and colour), and a
    // live region that announces the connection only, not every message counter.
    expect(await page.locator('#matrix tbody th[scope="row"]').count()).toBe(group.pupilIds.length);
    expect(await teacherCell.locator('.sr-only').textContent()).toBe('teacher-marked, score 9');
    expect(await photo.locator('.sr-only').textContent()).toBe('submitted, 1 file, needs marking');
    expect(await photo.locator('[aria-hidden="true"]').textContent()).toBe('●⇪1');
    expect(await page.locator('[aria-live], [role="status"]').evaluateAll((found) => found.map((e) => e.id))).toEqual([
      'connection',
    ]);
    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    await deleteUpload(info, uploader, 'act-diagram', 'leaf.jpg');
    await expect
      .poll(() => photo.getAttribute('data-needs-marking'), { timeout: 15_000 })
      .toBe('false');
    expect(await photo.getAttribute('data-has-upload')).toBe('false');
    expect(await text.getAttribute('data-needs-marking')).toBe('true');
    expect(await page.evaluate(() => (window as unknown as { marker: number }).marker)).toBe(42);
    // The daemon may coalesce writes that land in one staging (latest state wins), so only the
    // three phases waited on above are sure to be separate messages; the last one the page
    // applied is the last one the daemon numbered on the channel.
    expect(Number(await page.locator('#messages').textContent())).toBeGreaterThanOrEqual(3);
    const channelSeq = await sql(
      info,
      `select last_seq from results_realtime.channel_sequences where channel = :'channel';`,
      { channel: `assignment_results:${group.id}:${info.lessonId}` },
    );
    expect(await page.locator('#last-seq').textContent()).toBe(channelSeq);
    expect(errors).toEqual([]);
  });

  it('says why the table is empty while its first load fails, and clears it once loaded', async () => {
    const group = stack.info.groups[1];
    const page = await context.newPage();
    let failures = 2;
    await page.route('**/api/read_assignment_results', async (route) => {
      if (failures-- > 0) {
        await route.fulfill({ status: 503, body: 'the database is restarting' });
      } else {
        await route.continue();
      }
    });
    await page.goto(group.pageUrl);
    const notice = page.locator('#load-error');
    await notice.waitFor({ state: 'visible', timeout: 15_000 });
    expect(await notice.textContent()).toContain('the database is restarting');
    expect(await notice.getAttribute('role')).toBe('alert');
    await notice.waitFor({ state: 'hidden', timeout: 15_000 });
    expect(await page.locator('#matrix tbody th[scope="row"]').count()).toBe(group.pupilIds.length);
    await page.close();
  });
});
