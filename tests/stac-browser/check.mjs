#!/usr/bin/env node
// Drive STAC Browser (built by build.sh) in headless Chromium against a STAC API and report what works.
//
//   node tests/stac-browser/check.mjs API_URL SITE_URL OUT_DIR
//
// API_URL   the STAC API landing page, e.g. http://127.0.0.1:7822/
// SITE_URL  where build.sh's dist/ is served, e.g. http://127.0.0.1:7823/
// OUT_DIR   where screenshots (and report.json) go
//
// Prints one JSON object (also written to OUT_DIR/report.json); exits 1 when a check fails, 2 on
// a usage or setup error. playwright-core is loaded from the build directory
// ($STAC_BROWSER_DIR, else ${CARGO_TARGET_DIR:-/var/tmp/earthcatalog-target}/stac-browser);
// Chromium is $CHROMIUM, else /usr/bin/chromium. The site's config.js is answered by this
// script with {catalogUrl: API_URL}, so the static files stay as built.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const [apiArg, siteArg, outDir] = process.argv.slice(2);
if (!apiArg || !siteArg || !outDir) {
  console.error('usage: node check.mjs API_URL SITE_URL OUT_DIR');
  process.exit(2);
}
const API = apiArg.endsWith('/') ? apiArg : apiArg + '/';
const SITE = siteArg.endsWith('/') ? siteArg : siteArg + '/';
const apiOrigin = new URL(API).origin;
const siteOrigin = new URL(SITE).origin;
const depsDir = process.env.STAC_BROWSER_DIR
  || path.join(process.env.CARGO_TARGET_DIR || '/var/tmp/earthcatalog-target', 'stac-browser');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const STEP_MS = Number(process.env.STEP_TIMEOUT_MS || 20000);
fs.mkdirSync(outDir, { recursive: true });

let chromium;
try {
  ({ chromium } = createRequire(path.join(depsDir, 'package.json'))('playwright-core'));
} catch (e) {
  console.error(`check.mjs: playwright-core not found under ${depsDir} (run build.sh first): ${e.message}`);
  process.exit(2);
}

// ---------------------------------------------------------------- findings
const report = {
  api: API,
  site: SITE,
  browser: null,
  checks: {},           // name -> {pass, ...details}
  counts: {},
  consoleErrors: [],    // {phase, text, location}
  pageErrors: [],       // uncaught exceptions: {phase, message}
  failedRequests: [],   // to the API or the site: network failures and HTTP >= 400: {phase, method, url, error|status}
  // Left out of the two lists above, counted here: requests to any other host (item thumbnails
  // on S3, basemap tiles, epsg.io, remote JSON schemas) fail on a machine without network, with
  // console errors of their own ("Failed to load resource", "EncodingError: The source image cannot
  // be decoded."); and the browser's own /favicon.ico probe (STAC Browser ships no favicon).
  ignored: { failedRequests: {}, consoleErrors: {} },   // host -> count, text -> count
  apiRequests: [],      // every request to the API: {phase, method, url, body, status}
  screenshots: [],
};
let phase = 'start';
const isLocal = (u) => { try { const o = new URL(u).origin; return o === apiOrigin || o === siteOrigin; } catch { return true; } };
const offlineFailures = new Set();   // phases in which a request to another host failed
function check(name, pass, details = {}) {
  report.checks[name] = { pass: Boolean(pass), ...details };
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- browser
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'stac-browser-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: chromiumPath,
  headless: true,
  viewport: { width: 1400, height: 1000 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
report.browser = `chromium ${context.browser()?.version() ?? ''}`.trim();
const runtimeConfig = `window.STAC_BROWSER_CONFIG = ${JSON.stringify({ catalogUrl: API })};`;

function watch(page, { injectConfig }) {
  if (injectConfig) {
    page.route(`${SITE}config.js`, (route) =>
      route.fulfill({ status: 200, contentType: 'application/javascript', body: runtimeConfig }));
  }
  const bump = (m, k) => { m[k] = (m[k] || 0) + 1; };
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const loc = msg.location();
    const text = msg.text();
    if ((loc?.url && (!isLocal(loc.url) || loc.url === `${siteOrigin}/favicon.ico`) && text.startsWith('Failed to load resource'))
      || (text.includes('The source image cannot be decoded') && offlineFailures.has(phase))) {
      bump(report.ignored.consoleErrors, text);
      return;
    }
    report.consoleErrors.push({ phase, text, location: loc?.url ? `${loc.url}:${loc.lineNumber}` : undefined });
  });
  page.on('pageerror', (err) => report.pageErrors.push({ phase, message: String(err.message || err) }));
  page.on('requestfailed', (req) => {
    if (!isLocal(req.url())) {
      offlineFailures.add(phase);
      bump(report.ignored.failedRequests, new URL(req.url()).host);
      return;
    }
    report.failedRequests.push({ phase, method: req.method(), url: req.url(), error: req.failure()?.errorText });
  });
  page.on('response', (res) => {
    const req = res.request();
    if (res.status() >= 400 && isLocal(res.url()) && res.url() !== `${siteOrigin}/favicon.ico`) {
      report.failedRequests.push({ phase, method: req.method(), url: res.url(), status: res.status() });
    }
    if (res.url().startsWith(apiOrigin)) {
      report.apiRequests.push({ phase, method: req.method(), url: res.url(), body: req.postData() || undefined, status: res.status() });
    }
  });
}

const isSearchResponse = (res) => {
  const u = new URL(res.url());
  return u.origin === apiOrigin && /\/search$/.test(u.pathname) && res.request().method() !== 'OPTIONS';
};
const searchPages = [];   // every search response the UI received: {phase, json}
async function searchJson(res) {
  let json = null;
  try { json = await res.json(); } catch { /* not JSON */ }
  if (isSearchResponse(res)) searchPages.push({ phase, json });
  return json;
}
const errorsIn = (p) => [
  ...report.pageErrors.filter((e) => e.phase === p).map((e) => e.message),
  ...report.consoleErrors.filter((e) => e.phase === p).map((e) => e.text),
];
// Item cards in the result list, and the titles they show.
async function cards(page, scope) {
  const loc = page.locator(`${scope} .item-card`);
  return { count: await loc.count(), titles: await loc.locator('.card-title').allInnerTexts() };
}
// Wait until the search result pane settles: item cards, or an alert/error, and no spinner.
async function settle(page, scope) {
  await page.waitForFunction((s) => {
    const root = document.querySelector(s);
    if (!root || root.querySelector('.loading')) return false;
    return root.querySelector('.item-card, .alert, .error') !== null;
  }, scope, { timeout: STEP_MS }).catch(() => {});
  await sleep(500);   // late console errors of the render
}
const alertText = async (page, scope) =>
  (await page.locator(`${scope} .alert`).allInnerTexts()).map((t) => t.trim()).filter(Boolean);
const featureIds = (json) => (json?.features || []).map((f) => f.id);
const linkOf = (json, rel) => (json?.links || []).find((l) => l.rel === rel) || null;

const page = await context.newPage();
watch(page, { injectConfig: true });
const RESULTS = 'main.search .right';

async function step(name, fn) {
  phase = name;
  try {
    await fn();
  } catch (e) {
    if (!report.checks[name]) check(name, false, { error: String(e.message || e).split('\n')[0] });
  }
}

// The API's own view, to compare the UI against.
const rootJson = await (await fetch(API)).json().catch(() => null);
const collectionsJson = await (await fetch(`${API}collections`)).json().catch(() => null);
const collection = collectionsJson?.collections?.[0] || null;

// 1. Landing page: the root catalog and its collections.
await step('landing', async () => {
  await page.goto(`${SITE}#/`, { waitUntil: 'domcontentloaded' });
  const title = rootJson?.title || rootJson?.id || '';
  await page.locator('h1', { hasText: title }).first().waitFor({ timeout: STEP_MS });
  await page.locator('.catalog-card').first().waitFor({ timeout: STEP_MS }).catch(() => {});
  const n = await page.locator('.catalog-card').count();
  report.counts.landingCollections = n;
  check('landing', n >= 1 && n === (collectionsJson?.collections?.length ?? -1), {
    title: (await page.locator('h1').first().innerText()).trim(), collectionCards: n,
    apiCollections: collectionsJson?.collections?.length ?? null, errors: errorsIn('landing'),
  });
});

// 2. The collection: clicked from the landing page; its item list.
await step('collection', async () => {
  if (!collection) throw new Error('the API lists no collection');
  const name = collection.title || collection.id;
  await page.locator('.catalog-card .card-title a', { hasText: name }).first().click({ timeout: STEP_MS });
  await page.locator('h1', { hasText: name }).first().waitFor({ timeout: STEP_MS });
  await page.locator('.items .item-card, .items .alert').first().waitFor({ timeout: STEP_MS }).catch(() => {});
  await sleep(500);
  const c = await cards(page, '.items');
  report.counts.collectionItemCards = c.count;
  check('collection', c.count > 0, {
    url: page.url(), heading: (await page.locator('h1').first().innerText()).trim(),
    itemCards: c.count, errors: errorsIn('collection'),
  });
});

// 3. Item search without criteria, through the header's Search button and the form's Submit.
let page1 = null;
await step('search', async () => {
  await page.goto(`${SITE}#/`, { waitUntil: 'domcontentloaded' });
  await page.locator('header a', { hasText: 'Search' }).first().click({ timeout: STEP_MS });
  await page.locator('main.search form button[type=submit]').first().waitFor({ timeout: STEP_MS });
  const resP = page.waitForResponse(isSearchResponse, { timeout: STEP_MS });
  await page.locator('main.search form button[type=submit]').first().click();
  const res = await resP;
  const json = await searchJson(res);
  await settle(page, RESULTS);
  const c = await cards(page, RESULTS);
  page1 = { json, cards: c };
  report.counts.searchFeatures = json?.features?.length ?? null;
  report.counts.searchItemCards = c.count;
  const shot = path.join(outDir, 'search-results.png');
  await page.screenshot({ path: shot, fullPage: true });
  report.screenshots.push(shot);
  check('search', res.status() === 200 && c.count > 0 && c.count === (json?.features?.length ?? -1), {
    request: `${res.request().method()} ${res.url()}`, status: res.status(),
    features: json?.features?.length ?? null, itemCards: c.count,
    alerts: await alertText(page, RESULTS), errors: errorsIn('search'),
  });
});

// 4. Paging: Next, then Previous back to the first page (run after both searches).
async function paging(prefix, first) {
  const buttons = () => page.locator(`${RESULTS} .items > .btn-group`).first();
  let second = null;
  await step(`${prefix}next_page`, async () => {
    const name = `${prefix}next_page`;
    const next = buttons().getByRole('button', { name: 'Next' });
    if (!(await next.count())) {
      check(name, false, { reason: 'no Next button: the result list did not render', nextLink: linkOf(first?.json, 'next')?.href ?? null });
      return;
    }
    if (!(await next.isEnabled())) {
      check(name, false, { reason: 'Next is disabled on page 1', page1Links: (first?.json?.links || []).map((l) => l.rel) });
      return;
    }
    const resP = page.waitForResponse(isSearchResponse, { timeout: STEP_MS });
    await next.click();
    const res = await resP;
    const json = await searchJson(res);
    await settle(page, RESULTS);
    const c = await cards(page, RESULTS);
    second = { json, cards: c };
    report.counts[`${prefix}page2Features`] = json?.features?.length ?? null;
    report.counts[`${prefix}page2ItemCards`] = c.count;
    const overlap = featureIds(json).filter((id) => featureIds(first?.json).includes(id));
    check(name, res.status() === 200 && c.count > 0 && c.count === json.features.length && overlap.length === 0, {
      request: `${res.request().method()} ${res.url()}`, status: res.status(), features: json?.features?.length ?? null,
      itemCards: c.count, idsAlsoOnPage1: overlap.length, errors: errorsIn(name),
    });
  });
  await step(`${prefix}previous_page`, async () => {
    const name = `${prefix}previous_page`;
    if (!second) {
      check(name, false, { reason: 'page 2 was not reached' });
      return;
    }
    const prev = buttons().getByRole('button', { name: 'Previous' });
    const prevLink = linkOf(second.json, 'prev') || linkOf(second.json, 'previous');
    if (!(await prev.count()) || !(await prev.isEnabled())) {
      check(name, false, {
        reason: 'Previous is disabled on page 2', prevLink: prevLink?.href ?? null,
        page2Links: (second.json?.links || []).map((l) => l.rel),
        firstEnabled: await buttons().getByRole('button', { name: 'First' }).isEnabled().catch(() => false),
      });
      return;
    }
    const resP = page.waitForResponse(isSearchResponse, { timeout: STEP_MS });
    await prev.click();
    const res = await resP;
    const json = await searchJson(res);
    await settle(page, RESULTS);
    const c = await cards(page, RESULTS);
    const same = JSON.stringify(featureIds(json)) === JSON.stringify(featureIds(first?.json));
    check(name, res.status() === 200 && same && c.count === json.features.length && c.count > 0, {
      prevLink: prevLink?.href ?? null, request: `${res.request().method()} ${res.url()}`, status: res.status(),
      sameIdsAsPage1: same, itemCards: c.count, errors: errorsIn(name),
    });
  });
}
await paging('', page1);

// 5. Item search with a CQL2 filter from the form's "Additional filters":
//    percent_valid_pixels > 50 and collection = <the first collection>; then paging through it. The
//    collection clause keeps out items without a collection, so this paging test does not depend
//    on the search_items_have_self_link finding.
const FIELD = 'percent_valid_pixels';
const VALUE = 50;
let queryablesJson = null;
let filterPage1 = null;
await step('search_filter', async () => {
  const qP = page.waitForResponse((r) => r.url().startsWith(apiOrigin) && /queryables$/.test(new URL(r.url()).pathname), { timeout: STEP_MS });
  // A fresh form: load the app anew (after the requests in flight, so that none is cut off).
  await page.waitForLoadState('networkidle', { timeout: STEP_MS }).catch(() => {});
  await page.goto('about:blank');
  await page.goto(`${SITE}#/`, { waitUntil: 'domcontentloaded' });
  await page.locator('h1', { hasText: rootJson?.title || rootJson?.id || '' }).first().waitFor({ timeout: STEP_MS });
  await page.locator('header a', { hasText: 'Search' }).first().click({ timeout: STEP_MS });
  queryablesJson = await searchJson(await qP).catch(() => null);
  const form = page.locator('main.search form').first();
  async function addFilter(index, field, op, value) {
    await form.locator('.queryables button.dropdown-toggle').click({ timeout: STEP_MS });
    await form.locator('.queryables .dropdown-item', { has: page.locator('.badge', { hasText: new RegExp(`^${field}$`) }) })
      .first().click({ timeout: STEP_MS });
    const group = form.locator('.queryable-group').nth(index);
    await group.locator('.op button.dropdown-toggle-split').click();
    await group.locator('.op .dropdown-item', { has: page.locator('.badge', { hasText: new RegExp(`^${op}$`) }) }).first().click();
    await group.locator('input.value').fill(String(value));
  }
  await addFilter(0, FIELD, '>', VALUE);
  if (collection) await addFilter(1, 'collection', '=', collection.id);
  const resP = page.waitForResponse(isSearchResponse, { timeout: STEP_MS });
  await form.locator('button[type=submit]').click();
  const res = await resP;
  const json = await searchJson(res);
  await settle(page, RESULTS);
  const c = await cards(page, RESULTS);
  filterPage1 = { json, cards: c };
  const req = res.request();
  const sent = req.method() === 'POST' ? (() => { try { return JSON.parse(req.postData() || '{}').filter ?? null; } catch { return null; } })()
    : new URL(res.url()).searchParams.get('filter');
  const wrong = (json?.features || [])
    .filter((f) => !(f.properties?.[FIELD] > VALUE) || (collection && f.collection !== collection.id)).map((f) => f.id);
  report.counts.filterFeatures = json?.features?.length ?? null;
  report.counts.filterItemCards = c.count;
  const shot = path.join(outDir, 'search-filter-results.png');
  await page.screenshot({ path: shot, fullPage: true });
  report.screenshots.push(shot);
  check('search_filter', res.status() === 200 && sent && c.count > 0 && c.count === json.features.length && wrong.length === 0, {
    request: `${req.method()} ${res.url()}`, filterSent: sent, status: res.status(),
    features: json?.features?.length ?? null, itemCards: c.count, featuresNotMatching: wrong,
    alerts: await alertText(page, RESULTS), errors: errorsIn('search_filter'),
  });
});

await paging('filter_', filterPage1);

// An item page, from the first card of the result list shown now.
await step('item_page', async () => {
  const link = page.locator(`${RESULTS} .item-card .card-title a`).first();
  const title = (await link.innerText({ timeout: STEP_MS })).trim();
  const resP = page.waitForResponse((r) => r.url().startsWith(apiOrigin) && /\/items\/[^/]+$/.test(new URL(r.url()).pathname), { timeout: STEP_MS });
  await link.click();
  const res = await resP;
  await page.locator('h1', { hasText: title }).first().waitFor({ timeout: STEP_MS });
  await page.waitForLoadState('networkidle', { timeout: STEP_MS }).catch(() => {});
  check('item_page', res.status() === 200, {
    url: page.url(), request: `${res.request().method()} ${res.url()}`, status: res.status(), heading: title,
    errors: errorsIn('item_page'),
  });
});

// 6. /queryables is usable offline: no $ref outside the API (STAC Browser dereferences every $ref).
phase = 'queryables';
{
  const q = queryablesJson || (await (await fetch(`${API}queryables`)).json().catch(() => null));
  const refs = [];
  (function walk(v) {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k === '$ref' && typeof x === 'string') refs.push(x); else walk(x);
      }
    }
  })(q);
  const remote = refs.filter((r) => /^[a-z]+:\/\//i.test(r) && !r.startsWith(apiOrigin));
  check('queryables_self_contained', q && remote.length === 0, {
    properties: q?.properties ? Object.keys(q.properties).length : null, remoteRefs: remote,
    relatedErrors: report.consoleErrors.filter((e) => remote.some((r) => e.text.includes(new URL(r).host))).map((e) => e.text),
  });
}

// 7. The by-hand route without a configured catalog: SITE/#/external/http:/HOST:PORT/
await step('external_route', async () => {
  const p2 = await context.newPage();
  watch(p2, { injectConfig: false });
  const u = new URL(API);
  await p2.goto(`${SITE}#/external/${u.protocol}/${u.host}${u.pathname}`, { waitUntil: 'domcontentloaded' });
  const title = rootJson?.title || rootJson?.id || '';
  await p2.locator('h1', { hasText: title }).first().waitFor({ timeout: STEP_MS });
  const n = await p2.locator('.catalog-card').count();
  check('external_route', n >= 1, { url: p2.url(), collectionCards: n, errors: errorsIn('external_route') });
  await p2.close();
});

// 8. Every item of every search page the UI received has a self link: STAC Browser titles and
//    links each result card by it (without one: "TypeError: null is not a valid argument for URI"
//    in titleForHref, and the whole result list is not rendered).
phase = 'end';
{
  const feats = searchPages.flatMap((p) => (p.json?.features || []).map((f) => ({ phase: p.phase, f })));
  const noSelf = feats.filter(({ f }) => !linkOf(f, 'self'));
  check('search_items_have_self_link', searchPages.length > 0 && noSelf.length === 0, {
    searchPages: searchPages.length, items: feats.length, withoutSelf: noSelf.length,
    withoutSelfWithoutCollection: noSelf.filter(({ f }) => !f.collection).length,
    examples: noSelf.slice(0, 3).map(({ phase: ph, f }) => ({ phase: ph, id: f.id, collection: f.collection ?? null, rels: (f.links || []).map((l) => l.rel) })),
  });
}

// 9. Nothing went wrong on the side: no console errors, no uncaught exceptions, no failed request.
check('no_console_errors', report.consoleErrors.length === 0 && report.pageErrors.length === 0, {
  consoleErrors: report.consoleErrors.length, pageErrors: report.pageErrors.length,
});
check('no_failed_requests', report.failedRequests.length === 0, { failedRequests: report.failedRequests.length });

await context.close();
fs.rmSync(userDataDir, { recursive: true, force: true });

// Shorten: the same console error repeated per card is reported once, with a count.
function dedupe(list, key) {
  const m = new Map();
  for (const e of list) {
    const k = key(e);
    if (m.has(k)) m.get(k).count++; else m.set(k, { ...e, count: 1 });
  }
  return [...m.values()];
}
report.consoleErrors = dedupe(report.consoleErrors, (e) => `${e.phase}|${e.text}`);
report.pageErrors = dedupe(report.pageErrors, (e) => `${e.phase}|${e.message}`);
report.failedRequests = dedupe(report.failedRequests, (e) => `${e.phase}|${e.method}|${e.url}|${e.status}|${e.error}`);
report.apiRequests = report.apiRequests.filter((r) => r.method !== 'OPTIONS');
const names = Object.keys(report.checks);
report.passed = names.filter((n) => report.checks[n].pass);
report.failed = names.filter((n) => !report.checks[n].pass);
report.ok = report.failed.length === 0;
const out = JSON.stringify(report, null, 2);
fs.writeFileSync(path.join(outDir, 'report.json'), out + '\n');
console.log(out);
process.exit(report.ok ? 0 : 1);
