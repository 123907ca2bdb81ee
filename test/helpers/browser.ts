/**
 * Headless Chromium (Debian's `chromium`) for the web admin tests, driven by playwright-core over CDP.
 *
 * The browser is not launched by playwright but spawned through test/harness/children.ts: it is the leader of its own
 * process group (chromium forks a zygote, renderers, a GPU and a network process), registered with the run, and
 * killed with its whole group by close(), by the test's after() and by the harness if the test process dies — so no
 * chromium outlives its test. `--remote-debugging-port=0` makes it pick a free port and print the DevTools URL.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { spawnChild, type Child, type ChildOwner } from '../harness/children.ts';
import { ensureDebianPackages, BROWSER_PACKAGES, findBinary } from '../harness/packages.ts';

export interface TestBrowser {
  browser: Browser;
  child: Child;
  close(): Promise<void>;
}

export async function launchChromium(opts: { owner?: ChildOwner; timeoutMs?: number } = {}): Promise<TestBrowser> {
  await ensureDebianPackages(BROWSER_PACKAGES);
  const exe = findBinary('chromium')!;
  const profile = mkdtempSync(join(tmpdir(), 'postern-chromium-'));
  const child = spawnChild(
    exe,
    [
      '--headless=new',
      // The test runs as root in a container: Chromium's sandbox needs user namespaces it may not have.
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--no-first-run',
      '--no-default-browser-check',
      '--disable-extensions',
      '--disable-background-networking',
      '--disable-component-update',
      '--remote-debugging-address=127.0.0.1',
      '--remote-debugging-port=0',
      `--user-data-dir=${profile}`,
      'about:blank',
    ],
    { name: 'chromium', owner: opts.owner, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const timeoutMs = opts.timeoutMs ?? 90_000;
  let stderr = '';
  const ws = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`chromium printed no DevTools URL in ${timeoutMs} ms:\n${stderr.slice(-2000)}`)), timeoutMs);
    child.process.stderr!.setEncoding('utf8');
    child.process.stderr!.on('data', (s: string) => {
      stderr += s;
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    void child.exited.then((e) => {
      clearTimeout(timer);
      reject(new Error(`chromium exited (${e.code ?? e.signal}) before it listened:\n${stderr.slice(-2000)}`));
    });
  }).catch(async (err) => {
    await child.kill();
    rmSync(profile, { recursive: true, force: true });
    throw err;
  });
  // Keep reading stderr so a chatty browser never blocks on a full pipe.
  child.process.stderr!.resume();
  const browser = await chromium.connectOverCDP(ws, { timeout: timeoutMs });
  return {
    browser,
    child,
    async close() {
      await Promise.race([browser.close().catch(() => undefined), new Promise((r) => setTimeout(r, 5000))]);
      await child.kill();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
