/**
 * Web admin first-page load (issue 14 §4: "the first page loads in under 300 ms from the admin listener"): a fresh
 * browser context each time (no cache, a new TLS connection, as a first visit), timed from navigation to the login
 * form on screen, with the browser's own navigation timing beside it; and the files alone over one keep-alive
 * HTTPS connection (what the server costs without the browser). Postern runs in this process, on the embedded LDIF
 * directory; Chromium in its own. No peer: the seed's page is not available here. Nothing here asserts timings.
 */
import { request, Agent } from 'node:https';
import { loadavg } from 'node:os';
import { loadAssets } from '../../src/admin/web/web-admin.ts';
import { launchChromium } from '../helpers/browser.ts';
import { startTestServer } from '../helpers/server.ts';
import { envNumber, percentile, table } from './lib.ts';

const num = envNumber('WEB');

function ms(v: number): string {
  return `${v.toFixed(0)} ms`;
}

export async function benchWeb(): Promise<string> {
  const runs = num('RUNS', 15);
  const server = await startTestServer();
  const chrome = await launchChromium({ timeoutMs: 120_000 });
  const load0 = loadavg()[0];
  try {
    const base = `https://127.0.0.1:${server.ports.admin}`;
    const visible: number[] = [];
    const loadEnd: number[] = [];
    const dcl: number[] = [];
    // Per file, every run: when it started and ended (from navigation start), its new connection's TCP and TLS
    // time (0 when it reused one), the wait for its first byte; the protocol and how many connections were opened.
    type Entry = { name: string; startTime: number; responseEnd: number; connectStart: number; connectEnd: number; secureConnectionStart: number; requestStart: number; responseStart: number; nextHopProtocol: string };
    const perFile = new Map<string, { start: number[]; end: number[]; tcp: number[]; tls: number[]; ttfb: number[]; proto: string; fresh: number }>();
    const conns: number[] = [];
    const inDom: number[] = [];
    const painted: number[] = [];
    for (let i = 0; i < runs + 2; i++) {
      const ctx = await chrome.browser.newContext({ ignoreHTTPSErrors: true });
      // When the login form is in the document, and the frame after (on screen), by the page's own clock: what
      // the test's clock says also holds the DevTools round trips of the wait. (An init script runs by DevTools,
      // outside the page's CSP.)
      await ctx.addInitScript({
        content: `new MutationObserver((_, o) => {
          if (!document.getElementById('login')) return;
          o.disconnect();
          window.__shown = performance.now();
          requestAnimationFrame(() => setTimeout(() => (window.__painted = performance.now()), 0));
        }).observe(document, { subtree: true, childList: true });`,
      });
      const page = await ctx.newPage();
      const t0 = process.hrtime.bigint();
      await page.goto(`${base}/`);
      await page.getByLabel('User name').waitFor({ timeout: 60_000 });
      const wall = Number(process.hrtime.bigint() - t0) / 1e6;
      await page.waitForFunction('window.__painted > 0', undefined, { timeout: 60_000 });
      const [shownAt, paintedAt] = (await page.evaluate('[window.__shown, window.__painted]')) as [number, number];
      await page.waitForFunction('performance.getEntriesByType("navigation")[0].loadEventEnd > 0', undefined, { timeout: 60_000 });
      const nav = JSON.parse((await page.evaluate('JSON.stringify(performance.getEntriesByType("navigation")[0])')) as string) as { domContentLoadedEventEnd: number; loadEventEnd: number } & Entry;
      const res = JSON.parse((await page.evaluate('JSON.stringify(performance.getEntriesByType("resource"))')) as string) as Entry[];
      await ctx.close();
      if (i < 2) continue; // warm-up: the server's first TLS handshakes, Chromium's first renderer
      let opened = 0;
      for (const e of [{ ...nav, name: `${base}/`, startTime: 0 }, ...res]) {
        const name = new URL(e.name).pathname;
        const f = perFile.get(name) ?? { start: [], end: [], tcp: [], tls: [], ttfb: [], proto: e.nextHopProtocol, fresh: 0 };
        perFile.set(name, f);
        const fresh = e.connectEnd > e.connectStart;
        if (fresh) (opened++, f.fresh++);
        f.start.push(e.startTime);
        f.end.push(e.responseEnd);
        f.tcp.push(fresh ? (e.secureConnectionStart || e.connectEnd) - e.connectStart : 0);
        f.tls.push(fresh && e.secureConnectionStart ? e.connectEnd - e.secureConnectionStart : 0);
        f.ttfb.push(e.responseStart - e.requestStart);
      }
      conns.push(opened);
      inDom.push(shownAt);
      painted.push(paintedAt);
      visible.push(wall);
      loadEnd.push(nav.loadEventEnd);
      dcl.push(nav.domContentLoadedEventEnd);
    }
    // The files alone: every file of the login page (not the pages loaded after login), one keep-alive connection,
    // one after the other.
    const files = (await loadAssets()).initial;
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const get = (path: string) =>
      new Promise<number>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: server.ports.admin, path, agent, ca: server.tls.cert, checkServerIdentity: () => undefined }, (res) => {
          let n = 0;
          res.on('data', (c: Buffer) => (n += c.length));
          res.on('end', () => resolve(n));
        });
        req.on('error', reject);
        req.end();
      });
    const serial: number[] = [];
    let bytes = 0;
    for (let i = 0; i < runs + 2; i++) {
      const t0 = process.hrtime.bigint();
      bytes = 0;
      for (const f of files) bytes += await get(f);
      if (i >= 2) serial.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    agent.destroy();
    const stat = (xs: number[]) => {
      const s = [...xs].sort((a, b) => a - b);
      return [ms(percentile(s, 50)), ms(s[s.length - 1])];
    };
    const med = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 50).toFixed(1);
    const breakdown = table([
      ['file (medians, ms from navigation)', 'start', 'end', 'tcp', 'tls', 'ttfb', 'new conn', 'protocol'],
      ...[...perFile].map(([name, f]) => [name, med(f.start), med(f.end), med(f.tcp), med(f.tls), med(f.ttfb), `${f.fresh}/${f.start.length}`, f.proto]),
    ]);
    return [
      `Web admin first page (${runs} fresh browser contexts; load average ${load0.toFixed(1)} at the start, ${loadavg()[0].toFixed(1)} at the end, 2 cores)`,
      table([
        ['measure', 'median', 'max'],
        ['navigation to login form visible', ...stat(visible)],
        ['login form in the document (page clock)', ...stat(inDom)],
        ['login form painted (page clock)', ...stat(painted)],
        ['DOMContentLoaded (browser timing)', ...stat(dcl)],
        ['load event end (browser timing)', ...stat(loadEnd)],
        [`${files.length} files, ${(bytes / 1024).toFixed(0)} KB, one keep-alive connection`, ...stat(serial)],
      ]),
      `connections opened per page: median ${med(conns)}, max ${Math.max(...conns)}`,
      breakdown,
    ].join('\n');
  } finally {
    await chrome.close();
    await server.close();
  }
}
