// The browser tests' shared harness (examples/todo/e2e, tests/console-e2e): named checks with
// their results, polling with a deadline, and a headless Debian Chromium session in a profile
// of its own. Playwright comes from the caller (`chromium` of its own playwright-core), so this
// file needs no node_modules of its own.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Checks whose lines start with `label` (e.g. "[ours] "), written to `resultsFile` at the end. */
export function checks(label = '') {
  const results = [];
  return {
    /** Runs one named check: its note (what `fn` returns) or its failure, and how long it took. */
    async check(name, fn) {
      const started = Date.now();
      try {
        const note = await fn();
        results.push({ name, ok: true });
        console.log(`ok   - ${label}${name} (${Date.now() - started} ms)${note ? ` — ${note}` : ''}`);
      } catch (err) {
        results.push({ name, ok: false, error: String(err?.message || err) });
        console.log(`FAIL - ${label}${name}: ${err?.message || err}`);
      }
    },
    /** Records a failure outside the checks (the browser session itself). */
    failed(name, err) {
      results.push({ name, ok: false, error: String(err?.stack || err) });
      console.log(`FAIL - ${label}${name}: ${err?.stack || err}`);
    },
    /** Writes the results, prints the summary line and exits 0 only if every check passed. */
    finish(resultsFile) {
      const passed = results.filter((r) => r.ok).length;
      const failed = results.length - passed;
      writeFileSync(resultsFile, JSON.stringify({ passed, failed, results }, null, 2));
      console.log(`${label}${passed} checks passed, ${failed} failed`);
      process.exit(failed === 0 ? 0 : 1);
    },
  };
}

export function assert(cond, message) {
  if (!cond) throw new Error(message);
}

/** Polls `probe` until it returns true; returns the elapsed ms, or throws after `timeout`. */
export async function within(timeout, probe, describe, every = 20) {
  const start = Date.now();
  for (;;) {
    if ((await probe()) === true) return Date.now() - start;
    if (Date.now() - start > timeout) throw new Error(`not within ${timeout} ms: ${describe()}`);
    await sleep(every);
  }
}

/**
 * Runs `fn(context)` in a headless Chromium (`executablePath`) with a fresh profile, removed
 * afterwards; `artifacts` is created first. `prepare(context)` runs before `fn`.
 */
export async function withBrowser(chromium, { executablePath, artifacts, profile, viewport, prepare }, fn) {
  mkdirSync(artifacts, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), `${profile}-`));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    viewport,
  });
  try {
    if (prepare) await prepare(context);
    await fn(context);
  } finally {
    await context.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
