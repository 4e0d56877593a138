// Drives the server's web page (GET /) in Debian's headless Chromium, like a user would:
//
//   node page.test.mjs BASE_URL AUDIO_PATH EXPECTED_TEXT [--no-record]
//
// Uploads AUDIO_PATH, waits for the transcript, checks it contains EXPECTED_TEXT (ignoring case and
// punctuation), clicks a word in the middle and checks the player moved there and highlights it,
// downloads every output format, then records 2 s from Chromium's fake microphone and checks that
// transcription completes too (skipped with --no-record). Exits 0 when all holds, 1 with what was
// seen otherwise, 2 on bad arguments.
//
// Environment: CHROMIUM (default /usr/bin/chromium), PAGE_TEST_TIMEOUT_S (default 120: the bound on
// each transcription), PAGE_TEST_API_KEY (the server's API key, if it wants one: the page keeps it
// in localStorage, as if the user had typed it once).

import { chromium } from 'playwright-core';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, extname, join } from 'node:path';

const OUTPUT_FORMATS = ['txt', 'json', 'srt', 'vtt', 'tsv'];
const RECORDING_SECONDS = 2;
// How far the player may be from a clicked word's start when the seek is reported.
const SEEK_TOLERANCE_S = 0.3;
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  // A microphone that plays a beep, granted without a permission prompt.
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
];

class TestFailure extends Error {}

function fail(message) {
  throw new TestFailure(message);
}

/** Lowercase words without punctuation, so that "Ask not," matches "ask not". */
function normalize(text) {
  return text.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, ' ').trim();
}

function parseArguments(argv) {
  const flags = argv.filter((arg) => arg.startsWith('--'));
  const positional = argv.filter((arg) => !arg.startsWith('--'));
  const unknown = flags.filter((flag) => flag !== '--no-record');
  if (positional.length !== 3 || unknown.length > 0) {
    console.error('usage: node page.test.mjs BASE_URL AUDIO_PATH EXPECTED_TEXT [--no-record]');
    process.exit(2);
  }
  const [baseUrl, audioPath, expectedText] = positional;
  return { baseUrl: baseUrl.replace(/\/+$/, ''), audioPath, expectedText, record: !flags.includes('--no-record') };
}

// Runs in the page before its own script: logs every #app[data-state] change, so that a failure
// can say which states the page went through.
function recordStateChanges() {
  window.pageStates = [];
  new MutationObserver((records) => {
    // Records arrive in batches after the changes: each change's new value is the next one's old
    // value, and the last one's is the current value.
    const changes = records.filter((record) => record.target.id === 'app');
    changes.forEach((change, i) => {
      window.pageStates.push(i + 1 < changes.length ? changes[i + 1].oldValue : change.target.dataset.state);
    });
  }).observe(document, { subtree: true, attributes: true, attributeOldValue: true, attributeFilter: ['data-state'] });
}

/** What the page shows right now, for failure messages. */
async function describePage(page) {
  return page.evaluate(() => ({
    state: document.getElementById('app')?.dataset.state,
    statesSeen: window.pageStates,
    status: document.getElementById('status-text')?.textContent,
    error: document.getElementById('error-box')?.hidden ? null : document.getElementById('error-box')?.textContent,
    transcript: document.getElementById('transcript')?.innerText.slice(0, 500),
  })).catch((error) => ({ unavailable: error.message }));
}

/** Presses Transcribe and waits for the page to end in `done` (or fails with what it shows). */
async function transcribe(page, timeoutS) {
  await page.click('#submit-button');
  await page.waitForSelector('#app[data-state="done"], #app[data-state="error"]', { timeout: timeoutS * 1000 })
    .catch(() => fail(`no transcript within ${timeoutS} s`));
  const state = await page.getAttribute('#app', 'data-state');
  if (state === 'error') fail(`the page shows an error: ${await page.textContent('#error-box')}`);
}

async function openPage(context, baseUrl) {
  const page = await context.newPage();
  const response = await page.goto(`${baseUrl}/`);
  if (!response.ok() || await page.$('#app') === null) {
    fail(`GET ${baseUrl}/ is not the transcription page (HTTP ${response.status()}, title "${await page.title()}")`);
  }
  // The model list loads on its own; wait for it so that its errors surface here.
  await page.waitForFunction(() => document.querySelector('#model-select option[value]:not([value=""])')
    || !document.getElementById('error-box').hidden, null, { timeout: 10_000 })
    .catch(() => fail('the model list never loaded'));
  if (await page.isVisible('#error-box')) fail(`the page shows an error on load: ${await page.textContent('#error-box')}`);
  return page;
}

async function checkUploadedFile(context, { baseUrl, audioPath, expectedText }, timeoutS) {
  const page = await openPage(context, baseUrl);
  const models = await page.$$eval('#model-select option', (options) => options.map((option) => option.value));
  console.log(`models offered: ${models.join(', ')}`);

  await page.setInputFiles('#file-input', audioPath);
  const started = performance.now();
  await transcribe(page, timeoutS);
  console.log(`transcribed ${basename(audioPath)} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const statesSeen = await page.evaluate(() => window.pageStates);
  if (!statesSeen.includes('uploading')) fail(`the page never showed the upload (states: ${statesSeen})`);

  const words = await page.$$eval('#transcript .cue', (cues) => cues.map((cue) => ({
    text: cue.textContent, kind: cue.dataset.kind, start: Number(cue.dataset.start), end: Number(cue.dataset.end),
  })));
  // The spoken text from the clickable spans: the transcript's own text also holds speaker labels,
  // and its paragraphs join without a space.
  const shown = words.map((word) => word.text).join(' ');
  console.log(`transcript: ${shown}`);
  if (!normalize(shown).includes(normalize(expectedText))) {
    fail(`the transcript does not contain "${expectedText}"`);
  }
  if (!words.some((word) => word.kind === 'word')) {
    fail(`the transcript has no clickable words (${words.length} segment spans): did the server send "words"?`);
  }
  await checkWordClick(page, words);
  await checkDownloads(page, basename(audioPath, extname(audioPath)));
  await page.close();
}

async function checkWordClick(page, words) {
  const index = Math.floor(words.length / 2);
  const word = words[index];
  await page.waitForFunction(() => document.getElementById('player').readyState >= 1, null, { timeout: 10_000 })
    .catch(() => fail('the player never loaded the audio'));
  // Snapshot at the seek itself: the audio plays on, so reading the time later would measure playback.
  await page.evaluate((wordIndex) => {
    const player = document.getElementById('player');
    player.addEventListener('seeked', () => {
      window.seekSnapshot = {
        time: player.currentTime,
        highlighted: document.querySelectorAll('#transcript .cue')[wordIndex].classList.contains('is-current'),
        highlightedCount: document.querySelectorAll('#transcript .cue.is-current').length,
      };
    }, { once: true });
  }, index);
  await page.locator('#transcript .cue').nth(index).click();
  const snapshot = await page.waitForFunction(() => window.seekSnapshot, null, { timeout: 10_000 })
    .then((handle) => handle.jsonValue())
    .catch(() => fail(`clicking "${word.text}" did not seek the player`));
  console.log(`clicked word ${index} "${word.text}" (start ${word.start} s): player at ${snapshot.time.toFixed(3)} s`);
  if (Math.abs(snapshot.time - word.start) > SEEK_TOLERANCE_S) {
    fail(`the player is at ${snapshot.time} s, not at "${word.text}" (${word.start} s)`);
  }
  if (!snapshot.highlighted || snapshot.highlightedCount !== 1) {
    fail(`"${word.text}" is not the one highlighted word (${snapshot.highlightedCount} highlighted)`);
  }
}

async function checkDownloads(page, stem) {
  const formats = await page.$$eval('#downloads .download-button', (buttons) => buttons.map((b) => b.dataset.format));
  const missing = OUTPUT_FORMATS.filter((format) => !formats.includes(format));
  if (missing.length > 0) fail(`no download button for ${missing.join(', ')} (buttons: ${formats.join(', ')})`);
  for (const format of formats) {
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: 10_000 }),
      page.click(`#downloads .download-button[data-format="${format}"]`),
    ]).catch(() => fail(`the ${format} button started no download`));
    const path = await download.path();
    const { size } = await stat(path);
    if (size === 0) fail(`the ${format} download is empty`);
    if (download.suggestedFilename() !== `${stem}.${format}`) {
      fail(`the ${format} download is named ${download.suggestedFilename()}, not ${stem}.${format}`);
    }
    if (format === 'json') JSON.parse(await readFile(path, 'utf8'));
    console.log(`download ${download.suggestedFilename()}: ${size} bytes`);
  }
}

async function checkRecording(context, { baseUrl }, timeoutS) {
  const page = await openPage(context, baseUrl);
  await page.click('#record-button');
  await page.waitForSelector('#app[data-state="recording"], #app[data-state="error"]', { timeout: 10_000 });
  if (await page.getAttribute('#app', 'data-state') === 'error') {
    fail(`recording did not start: ${await page.textContent('#error-box')}`);
  }
  await page.waitForTimeout(RECORDING_SECONDS * 1000);
  await page.click('#record-button');
  await page.waitForFunction(() => document.getElementById('app').dataset.state !== 'recording'
    && !document.getElementById('submit-button').disabled, null, { timeout: 10_000 })
    .catch(() => fail('the recording never became ready to send'));
  console.log(`recorded: ${await page.textContent('#selected-audio')}`);
  await transcribe(page, timeoutS);
  console.log(`recording transcribed: "${(await page.innerText('#transcript')).trim()}"`);
  await page.close();
}

async function main() {
  const options = parseArguments(process.argv.slice(2));
  const timeoutS = Number(process.env.PAGE_TEST_TIMEOUT_S ?? 120);
  await stat(options.audioPath).catch(() => {
    console.error(`no audio file at ${options.audioPath}`);
    process.exit(2);
  });
  const userDataDir = await mkdtemp(join(tmpdir(), 'page-test-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
  const pageErrors = [];
  context.on('page', (page) => {
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') pageErrors.push(`console: ${message.text()}`);
    });
  });
  await context.addInitScript(recordStateChanges);
  if (process.env.PAGE_TEST_API_KEY) {
    await context.addInitScript((key) => {
      if (location.protocol.startsWith('http')) localStorage.setItem('mlx-asr.api-key', key); // not about:blank
    }, process.env.PAGE_TEST_API_KEY);
  }
  const started = performance.now();
  let exitCode = 0;
  try {
    await checkUploadedFile(context, options, timeoutS);
    if (options.record) await checkRecording(context, options, timeoutS);
    if (pageErrors.length > 0) fail(`the page logged errors:\n  ${pageErrors.join('\n  ')}`);
    console.log(`PASS in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  } catch (error) {
    exitCode = 1;
    console.error(`FAIL: ${error instanceof TestFailure ? error.message : error.stack}`);
    for (const page of context.pages().filter((page) => page.url() !== 'about:blank')) {
      console.error(`page ${page.url()}:`, JSON.stringify(await describePage(page), null, 2));
    }
    if (pageErrors.length > 0) console.error(`page errors:\n  ${pageErrors.join('\n  ')}`);
  } finally {
    await context.close();
    await rm(userDataDir, { recursive: true, force: true });
  }
  process.exit(exitCode);
}

await main();
