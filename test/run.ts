/**
 * `npm test`: the test driver and global setup (Node 20's test runner has none).
 *
 *   node --import tsx test/run.ts [FILTER...] [--node-test-option...]
 *
 * Finds every *.test.ts under test/unit, test/protocol and test/integration. A FILTER that names a file or a
 * directory selects it; any other word selects the test files whose path contains it. Arguments starting with
 * "-" go to `node --test` unchanged (e.g. --test-name-pattern=lockout, --test-only).
 *
 * When an integration test is selected it first ensures the Debian packages (installing them as root), then
 * starts, in parallel, a clamd and a spamd (test/harness/clamd.ts, spamd.ts) and two Samba AD DCs side by side, each
 * in its own temp dir and loopback address:
 *   AD  (POSTERN_TEST_AD_*)  CORP.EXAMPLE / CORP on 127.0.0.1, loaded from fixtures/ad/corp.ldif
 *   AD2 (POSTERN_TEST_AD2_*) ACME.TEST / ACME on 127.0.0.2, loaded from fixtures/ad/other.ldif
 * AD2 is the DC tests may stop mid-run ("the DC went away"): controlTestDc('stop' | 'start') in
 * test/harness/samba.ts. Test files run concurrently, so AD2 is only for the tests written for that; every other
 * test uses AD. A test that stops AD2 starts it again before it ends.
 *
 * Environment given to the tests (set only when the DCs run). For AD, and the same names with AD2 for AD2:
 *   POSTERN_TEST_AD_URL             ldaps://127.0.0.1:636
 *   POSTERN_TEST_AD_LDAP_URL        ldap://127.0.0.1:389 (plain LDAP: simple binds are refused, strong auth required)
 *   POSTERN_TEST_AD_HOST            127.0.0.1
 *   POSTERN_TEST_AD_BASE            DC=corp,DC=example
 *   POSTERN_TEST_AD_REALM           CORP.EXAMPLE
 *   POSTERN_TEST_AD_DOMAIN          CORP (NetBIOS)
 *   POSTERN_TEST_AD_CA              PEM file of the CA of the LDAPS certificate. The certificate names
 *                                   IP:<host> and DNS:<servername>, so `tlsOptions: { ca }` verifies it as is.
 *   POSTERN_TEST_AD_TLS_SERVERNAME  dc.corp.example (the certificate's DNS name)
 *   POSTERN_TEST_AD_ADMIN_DN        CN=Administrator,CN=Users,DC=corp,DC=example
 *   POSTERN_TEST_AD_ADMIN_PASSWORD  its password
 *   POSTERN_TEST_AD_BIND_DN         the service account of the fixture (svc-mail / svc-postern)
 *   POSTERN_TEST_AD_BIND_PASSWORD   its password
 *   POSTERN_TEST_AD_LDIF            absolute path of the LDIF loaded into it
 *   POSTERN_TEST_AD_DIR             the DC's directory (samba.log is there)
 *   POSTERN_TEST_KRB5_CONF          krb5.conf for CORP.EXAMPLE (kdc = 127.0.0.1); use as KRB5_CONFIG
 *   POSTERN_TEST_AD2_KRB5_CONF      krb5.conf for ACME.TEST (kdc = 127.0.0.2)
 *   POSTERN_TEST_DC_CONTROL         http://127.0.0.1:PORT; POST /NAME/stop, POST /NAME/start, GET /NAME/status
 *                                   for NAME ad2, clamd, spamd: controlService() in test/harness/control.ts
 *
 * clamd (a signature database with only the EICAR test file, named Eicar-Test-Signature) and spamd (the rules the
 * Debian package ships; GTUBE scores 1000; --allow-tell; Bayes on with SpamAssassin's minimums, auto-learn off):
 *   POSTERN_TEST_CLAMD_SOCKET       its LocalSocket (Unix socket path)
 *   POSTERN_TEST_CLAMD_HOST         127.0.0.1
 *   POSTERN_TEST_CLAMD_PORT         its TCPSocket (a free port)
 *   POSTERN_TEST_CLAMD_DIR          its dir (clamd.log is there)
 *   POSTERN_TEST_SPAMD_HOST         127.0.0.1
 *   POSTERN_TEST_SPAMD_PORT         a free port
 *   POSTERN_TEST_SPAMD_DIR          its dir (spamd.log is there)
 * They are shared by every test file: a test that wants "the daemon went away" should start its own with
 * startClamd() / startSpamd(); one that stops the shared one starts it again before it ends.
 *
 * PostgreSQL (test/harness/postgres.ts: initdb in a temp dir, a free port on 127.0.0.1, password auth on loopback
 * only) is started when a selected test file of any tier mentions POSTERN_TEST_PG or test/helpers/pg-database, and
 * its variables are given to every tier (the tiers with such a file wait for it). Tests make a database of their
 * own with createTestDatabase() (test/helpers/pg-database.ts):
 *   POSTERN_TEST_PG_URL             postgres://postern:PASSWORD@127.0.0.1:PORT/postgres (a superuser)
 *   POSTERN_TEST_PG_HOST, _PORT, _USER, _PASSWORD
 *   POSTERN_TEST_PG_DIR             its dir (postgres.log is there)
 * POSTERN_TEST_DC_CONTROL also has NAME postgres (stop = fast shutdown, every connection dropped; start). Like
 * clamd, a test that wants "PostgreSQL went away" should rather start its own with startPostgres().
 *
 * Tiers and children (test/harness/runner.ts, children.ts): unit, protocol and integration run as three
 * `node --test` runs, one after the other (on 2 cores Node runs one file at a time anyway); the DCs, clamd and spamd
 * start in the background meanwhile, so the integration tier does not wait for them. Each run has
 * --test-force-exit, a per-file limit, and its own process group; what its test processes spawned is registered
 * under POSTERN_TEST_RUN_DIR and killed after each run, so no test can keep `npm test` alive. A watchdog ends the
 * whole run after POSTERN_TEST_WATCHDOG_MINUTES. At the end the wall time of each tier and of the setup is
 * printed, then the counts of all tiers together (`# tests N`, `# pass N`, `# fail N` ...) and, as the very last
 * line, `N passed, N failed`.
 *
 * Driver settings:
 *   POSTERN_TEST_KEEP_DC=1           leave the DCs', clamd's and spamd's dirs after the run (they are printed)
 *   POSTERN_TEST_SKIP_INTEGRATION=1  do not run test/integration (e.g. not root and no Samba)
 *   POSTERN_TEST_FILE_TIMEOUT_S      per test file limit (default 600: the longest file takes about 90 s quiet)
 *   POSTERN_TEST_WATCHDOG_MINUTES    limit of the whole run (default 40; a quiet run takes about 5)
 *
 * Exits non-zero if any tier failed (or was killed, or its setup failed).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadLdif } from '../fixtures/ad/load.js';
import { type Child } from './harness/children.js';
import { startClamd, type Clamd } from './harness/clamd.js';
import { killAllDaemons } from './harness/control.js';
import { ensureDebianPackages, FILTER_PACKAGES, POSTGRES_PACKAGES, SAMBA_PACKAGES } from './harness/packages.js';
import { killAllPostgres, postgresEnv, startPostgres, type Postgres } from './harness/postgres.js';
import { COUNT_NAMES, runNodeTest, type Counts, type RunNodeTestResult } from './harness/runner.js';
import { killAllSamba, startSambaDc, type SambaDc } from './harness/samba.js';
import { startSpamd, type Spamd } from './harness/spamd.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TIERS = ['unit', 'protocol', 'integration'] as const;
const tierDir = (tier: string) => join(root, 'test', tier) + sep;
const INTEGRATION_DIR = tierDir('integration');
const FILE_TIMEOUT_MS = Number(process.env.POSTERN_TEST_FILE_TIMEOUT_S ?? 600) * 1000;
const WATCHDOG_MS = Number(process.env.POSTERN_TEST_WATCHDOG_MINUTES ?? 40) * 60_000;

/** The Administrator password of the test DCs (provision wants a complex one). */
const DC_ADMIN_PASSWORD = 'Samba!Adm1n-2026';

interface DcSpec {
  prefix: 'AD' | 'AD2';
  realm: string;
  domain: string;
  host: string;
  ldif: string;
  bindDN: (base: string) => string;
  bindPassword: string;
}

const DCS: DcSpec[] = [
  {
    prefix: 'AD',
    realm: 'CORP.EXAMPLE',
    domain: 'CORP',
    host: '127.0.0.1',
    ldif: join(root, 'fixtures', 'ad', 'corp.ldif'),
    bindDN: (base) => `CN=svc-mail,OU=Service Accounts,OU=Staff,${base}`,
    bindPassword: 'Svc!Mail2026',
  },
  {
    prefix: 'AD2',
    realm: 'ACME.TEST',
    domain: 'ACME',
    host: '127.0.0.2',
    ldif: join(root, 'fixtures', 'ad', 'other.ldif'),
    bindDN: (base) => `CN=svc-postern,OU=Services,OU=HQ,${base}`,
    bindPassword: 'Svc!Acme2026',
  },
];

/**
 * A loopback address where nothing listens on LDAPS yet: the documented one (127.0.0.1 / 127.0.0.2) when free,
 * else 127.0.N.x, so two test runs (two developers' sessions, a benchmark) can each have their own DCs.
 */
async function freeLoopback(preferred: string): Promise<string> {
  const last = preferred.split('.').at(-1);
  for (let n = 0; n < 50; n++) {
    const host = n === 0 ? preferred : `127.0.${n}.${last}`;
    const free = await new Promise<boolean>((resolveFree) => {
      const probe = createNetServer();
      probe.once('error', () => resolveFree(false));
      probe.listen(636, host, () => probe.close(() => resolveFree(true)));
    });
    if (free) return host;
  }
  throw new Error(`no free loopback address for a test DC near ${preferred}`);
}

const say = (msg: string) => process.stderr.write(`[test/run] ${msg}\n`);

/** Exit code of the signal that interrupted the run (130 SIGINT, 143 SIGTERM); 0 if none. */
let interrupted = 0;

function findTests(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const ent of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, ent.name);
    if (ent.isDirectory()) out.push(...findTests(p));
    else if (ent.isFile() && ent.name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

function selectTests(all: string[], filters: string[]): string[] {
  if (filters.length === 0) return all;
  const picked = new Set<string>();
  for (const f of filters) {
    const abs = resolve(f);
    let matched: string[];
    if (existsSync(abs) && statSync(abs).isDirectory()) matched = all.filter((t) => t.startsWith(abs + sep));
    else if (existsSync(abs)) matched = all.filter((t) => t === abs);
    else matched = all.filter((t) => relative(root, t).includes(f));
    if (matched.length === 0) say(`no test file matches "${f}"`);
    for (const m of matched) picked.add(m);
  }
  return all.filter((t) => picked.has(t));
}

/** Test files that need the PostgreSQL of the run: they name its variables or the per-test database helper. */
const needsPostgres = (file: string) => /POSTERN_TEST_PG|pg-database/.test(readFileSync(file, 'utf8'));

async function startDc(spec: DcSpec): Promise<{ dc: SambaDc; env: Record<string, string> }> {
  const t0 = Date.now();
  const host = await freeLoopback(spec.host);
  const dc = await startSambaDc({ realm: spec.realm, domain: spec.domain, adminPassword: DC_ADMIN_PASSWORD, host });
  try {
    const t1 = Date.now();
    await loadLdif({
      url: dc.ldapsUrl,
      bindDN: dc.adminDN,
      password: dc.adminPassword,
      ldifFile: spec.ldif,
      baseDN: dc.baseDN,
      caFile: dc.caFile,
      servername: dc.caFile ? undefined : dc.tlsServername,
    });
    const loadMs = Date.now() - t1;
    say(
      `${spec.prefix} ${spec.realm} on ${host}: provision ${dc.timings.provisionMs} ms, start ${dc.timings.startMs} ms, ` +
        `load ${loadMs} ms, total ${Date.now() - t0} ms (${dc.dir})`,
    );
  } catch (err) {
    await dc.destroy();
    throw err;
  }
  const p = `POSTERN_TEST_${spec.prefix}`;
  const env: Record<string, string> = {
    [`${p}_URL`]: dc.ldapsUrl,
    [`${p}_LDAP_URL`]: dc.ldapUrl,
    [`${p}_HOST`]: dc.host,
    [`${p}_BASE`]: dc.baseDN,
    [`${p}_REALM`]: dc.realm,
    [`${p}_DOMAIN`]: dc.domain,
    [`${p}_TLS_SERVERNAME`]: dc.tlsServername,
    [`${p}_ADMIN_DN`]: dc.adminDN,
    [`${p}_ADMIN_PASSWORD`]: dc.adminPassword,
    [`${p}_BIND_DN`]: spec.bindDN(dc.baseDN),
    [`${p}_BIND_PASSWORD`]: spec.bindPassword,
    [`${p}_LDIF`]: spec.ldif,
    [`${p}_DIR`]: dc.dir,
    [spec.prefix === 'AD' ? 'POSTERN_TEST_KRB5_CONF' : 'POSTERN_TEST_AD2_KRB5_CONF']: dc.krb5Conf,
  };
  if (dc.caFile) env[`${p}_CA`] = dc.caFile;
  return { dc, env };
}

/** A shared service test processes may stop and start: AD2, clamd, spamd. */
interface Controllable {
  readonly running: boolean;
  stop(): Promise<void>;
  start(): Promise<void>;
}

async function startFilterDaemons(): Promise<{ clamd: Clamd; spamd: Spamd; env: Record<string, string> }> {
  const [c, s] = await Promise.allSettled([startClamd(), startSpamd()]);
  if (c.status === 'rejected' || s.status === 'rejected') {
    if (c.status === 'fulfilled') await c.value.destroy();
    if (s.status === 'fulfilled') await s.value.destroy();
    throw c.status === 'rejected' ? c.reason : (s as PromiseRejectedResult).reason;
  }
  const clamd = c.value;
  const spamd = s.value;
  say(`clamd on ${clamd.socket} and ${clamd.host}:${clamd.port}: setup ${clamd.timings.setupMs} ms, start ${clamd.timings.startMs} ms`);
  say(`spamd on ${spamd.host}:${spamd.port}: start ${spamd.timings.startMs} ms`);
  const env: Record<string, string> = {
    POSTERN_TEST_CLAMD_SOCKET: clamd.socket,
    POSTERN_TEST_CLAMD_HOST: clamd.host,
    POSTERN_TEST_CLAMD_PORT: String(clamd.port),
    POSTERN_TEST_CLAMD_DIR: clamd.dir,
    POSTERN_TEST_SPAMD_HOST: spamd.host,
    POSTERN_TEST_SPAMD_PORT: String(spamd.port),
    POSTERN_TEST_SPAMD_DIR: spamd.dir,
  };
  return { clamd, spamd, env };
}

/**
 * Lets test processes stop and start the shared services (they are not their parent). Operations on one service
 * are serialised.
 */
function startControlServer(services: Map<string, Controllable>): Promise<{ server: Server; url: string }> {
  const chains = new Map<string, Promise<unknown>>();
  const server = createServer((req, res) => {
    const m = /^\/([a-z0-9]+)\/(stop|start|status)$/.exec(req.url ?? '');
    const svc = m ? services.get(m[1]) : undefined;
    if (!m || !svc) {
      res.writeHead(404).end(`unknown service or action (services: ${[...services.keys()].join(', ')})\n`);
      return;
    }
    if (m[2] === 'status') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ running: svc.running }));
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(405).end('POST\n');
      return;
    }
    const op = (chains.get(m[1]) ?? Promise.resolve()).then(() => (m[2] === 'stop' ? svc.stop() : svc.start()));
    chains.set(m[1], op.catch(() => {}));
    op.then(
      () => res.writeHead(200).end('ok\n'),
      (err: unknown) => res.writeHead(500).end(`${(err as Error).message}\n`),
    );
  });
  return new Promise((resolveServer, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      if (!addr || typeof addr === 'string') return reject(new Error('control server has no port'));
      resolveServer({ server, url: `http://127.0.0.1:${addr.port}` });
    });
  });
}

interface Setup {
  dcs: SambaDc[];
  filterDaemons?: Awaited<ReturnType<typeof startFilterDaemons>>;
  postgres?: Postgres;
  control?: Server;
  /** What the control endpoint serves; filled as the services come up. */
  services: Map<string, Controllable>;
  env: Record<string, string>;
}

/** The control endpoint, once per run (the integration services and PostgreSQL both need it). */
async function ensureControl(into: Setup): Promise<void> {
  if (into.control) return;
  const ctl = await startControlServer(into.services);
  into.control = ctl.server;
  into.env.POSTERN_TEST_DC_CONTROL = ctl.url;
}

/** The Debian package and a PostgreSQL for the run. */
async function startRunPostgres(into: Setup): Promise<void> {
  await ensureDebianPackages(POSTGRES_PACKAGES, say);
  const pg = await startPostgres();
  into.postgres = pg;
  say(`PostgreSQL on ${pg.host}:${pg.port}: initdb ${pg.timings.initdbMs} ms, start ${pg.timings.startMs} ms (${pg.dir})`);
  into.services.set('postgres', pg);
  await ensureControl(into);
  Object.assign(into.env, postgresEnv(pg));
}

/** Debian packages, the two DCs, clamd, spamd and the control endpoint; fills `into` as they come up (for cleanup). */
async function startIntegrationServices(into: Setup): Promise<void> {
  await ensureDebianPackages([...SAMBA_PACKAGES, ...FILTER_PACKAGES], say);
  const t0 = Date.now();
  const [started, daemons] = await Promise.all([
    Promise.allSettled(DCS.map((spec) => startDc(spec))),
    Promise.allSettled([startFilterDaemons()]),
  ]);
  for (const s of started) if (s.status === 'fulfilled') into.dcs.push(s.value.dc);
  if (daemons[0].status === 'fulfilled') into.filterDaemons = daemons[0].value;
  const failed = [...started, ...daemons].find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  for (const s of started) if (s.status === 'fulfilled') Object.assign(into.env, s.value.env);
  Object.assign(into.env, into.filterDaemons!.env);
  say(`Samba DCs, clamd and spamd ready in ${Date.now() - t0} ms`);
  into.services.set('ad2', into.dcs[1]);
  into.services.set('clamd', into.filterDaemons!.clamd);
  into.services.set('spamd', into.filterDaemons!.spamd);
  await ensureControl(into);
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

async function main(): Promise<number> {
  const t0 = Date.now();
  const deadline = t0 + WATCHDOG_MS;
  const loadAtStart = loadavg()[0].toFixed(2);
  const args = process.argv.slice(2);
  const passthrough = args.filter((a) => a.startsWith('-'));
  const filters = args.filter((a) => !a.startsWith('-'));
  let files = selectTests(TIERS.flatMap((t) => findTests(tierDir(t))).sort(), filters);
  if (process.env.POSTERN_TEST_SKIP_INTEGRATION === '1') {
    const before = files.length;
    files = files.filter((f) => !f.startsWith(INTEGRATION_DIR));
    if (before !== files.length) say(`POSTERN_TEST_SKIP_INTEGRATION=1: skipping ${before - files.length} integration test file(s)`);
  }
  if (files.length === 0) {
    say(filters.length ? 'no test files selected' : 'no test files found');
    return filters.length ? 1 : 0;
  }
  const tiers = TIERS.map((name) => ({ name, files: files.filter((f) => f.startsWith(tierDir(name))) })).filter((t) => t.files.length > 0);

  const runDir = mkdtempSync(join(tmpdir(), 'postern-test-run-'));
  const setup: Setup = { dcs: [], services: new Map(), env: {} };
  let runner: Child | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      setup.control?.close();
      const { dcs, filterDaemons, postgres } = setup;
      const daemons = [...(filterDaemons ? [filterDaemons.clamd, filterDaemons.spamd] : []), ...(postgres ? [postgres] : [])];
      if (process.env.POSTERN_TEST_KEEP_DC === '1') {
        await Promise.all([...dcs, ...daemons].map((d) => d.stop()));
        for (const dc of dcs) say(`kept ${dc.realm} in ${dc.dir} (POSTERN_TEST_KEEP_DC=1)`);
        for (const d of daemons) say(`kept ${d.dir} (POSTERN_TEST_KEEP_DC=1)`);
      } else {
        await Promise.all([
          ...dcs.map((dc) => dc.destroy().catch((err: unknown) => say(`destroy ${dc.realm}: ${(err as Error).message}`))),
          ...daemons.map((d) => d.destroy().catch((err: unknown) => say(`destroy ${d.dir}: ${(err as Error).message}`))),
        ]);
      }
      rmSync(runDir, { recursive: true, force: true });
    })());
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) {
      say(`${sig} again: exiting without cleanup`);
      killAllSamba('SIGKILL');
      killAllDaemons('SIGKILL');
      killAllPostgres();
      process.exit(interrupted); // the 'exit' hook of children.ts SIGKILLs the runner's group
    }
    interrupted = sig === 'SIGINT' ? 130 : 143;
    say(`${sig}: stopping (again to force)`);
    // The runner has its own process group: signal it and its test processes (they kill their children and exit);
    // a DC being provisioned fails and removes its dir; main()'s finally destroys the rest.
    if (runner?.running) {
      try {
        process.kill(-runner.pid, sig);
      } catch {
        /* just ended */
      }
    }
    killAllSamba();
    killAllDaemons();
    // A fast shutdown would wait for nothing here either: the run is over, the data dir is thrown away.
    killAllPostgres();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const wall: { name: string; ms: number; note?: string }[] = [];
  const results: RunNodeTestResult[] = [];
  let setupFailed = false;
  try {
    // The DCs take ~10 s to provision and start: do it while the unit and protocol tiers run.
    let setupDone: Promise<void> | undefined;
    // PostgreSQL takes a few seconds (initdb): started first, awaited only by the tiers that have a file needing it.
    let pgDone: Promise<void> | undefined;
    const pgTiers = new Set(tiers.filter((t) => t.files.some(needsPostgres)).map((t) => t.name));
    if (pgTiers.size > 0) {
      const p0 = Date.now();
      pgDone = startRunPostgres(setup).then(
        () => void wall.push({ name: 'setup (PostgreSQL)', ms: Date.now() - p0 }),
        (err: unknown) => {
          wall.push({ name: 'setup (PostgreSQL)', ms: Date.now() - p0, note: 'FAILED' });
          throw err;
        },
      );
      pgDone.catch(() => {});
    }
    if (tiers.some((t) => t.name === 'integration')) {
      const s0 = Date.now();
      setupDone = startIntegrationServices(setup).then(
        () => void wall.push({ name: 'setup (DCs, clamd, spamd)', ms: Date.now() - s0, note: 'beside unit and protocol' }),
        (err: unknown) => {
          wall.push({ name: 'setup (DCs, clamd, spamd)', ms: Date.now() - s0, note: 'FAILED' });
          throw err;
        },
      );
      setupDone.catch(() => {}); // awaited before the integration tier; not unhandled meanwhile
    }
    for (const tier of tiers) {
      if (interrupted) break;
      if (tier.name === 'integration') {
        const w0 = Date.now();
        try {
          await setupDone;
        } catch (err) {
          if (interrupted) break;
          say(`setup failed, integration tier not run: ${(err as Error).stack ?? String(err)}`);
          setupFailed = true;
          break;
        }
        if (Date.now() - w0 > 1000) say(`waited ${seconds(Date.now() - w0)} for the integration services`);
        if (interrupted) break;
      }
      if (pgTiers.has(tier.name)) {
        try {
          await pgDone;
        } catch (err) {
          if (interrupted) break;
          say(`PostgreSQL setup failed, ${tier.name} tier not run: ${(err as Error).stack ?? String(err)}`);
          setupFailed = true;
          break;
        }
      }
      say(`${tier.name}: ${tier.files.length} test file(s)`);
      const runTier = () => runNodeTest({
        name: tier.name,
        files: tier.files.map((f) => relative(root, f)),
        cwd: root,
        // The integration tier gets everything; the others only PostgreSQL's variables (and the control endpoint).
        env: {
          ...process.env,
          ...(tier.name === 'integration' ? setup.env : {}),
          ...(setup.postgres ? { ...postgresEnv(setup.postgres), POSTERN_TEST_DC_CONTROL: setup.env.POSTERN_TEST_DC_CONTROL } : {}),
        },
        args: passthrough,
        runDir,
        fileTimeoutMs: FILE_TIMEOUT_MS,
        deadline,
        onSpawn: (c) => (runner = c),
        say,
      });
      let r = await runTier();
      // A stalled runner (harness/runner.ts) was running no test when it was killed: the tier is run once more.
      if (r.stalled && !interrupted && Date.now() < deadline) {
        say(`${tier.name}: running the tier again after the stalled runner`);
        r = await runTier();
      }
      runner = undefined;
      results.push(r);
      wall.push({ name: tier.name, ms: r.ms });
      if (r.watchdog) {
        say(`WATCHDOG: the whole run took longer than ${WATCHDOG_MS / 60_000} min (POSTERN_TEST_WATCHDOG_MINUTES); stopping`);
        break;
      }
    }
  } finally {
    const c0 = Date.now();
    await cleanup();
    if (setup.dcs.length || setup.filterDaemons || setup.postgres) wall.push({ name: 'teardown (services)', ms: Date.now() - c0 });
  }

  // Totals last: CI reads the closing lines.
  const total = Object.fromEntries(COUNT_NAMES.map((k) => [k, 0])) as Counts;
  for (const r of results) for (const k of COUNT_NAMES) total[k] += r.counts?.[k] ?? 0;
  const incomplete = results.filter((r) => !r.counts).map((r) => r.name);
  const failedTiers = results.filter((r) => r.code !== 0 || !r.counts || r.counts.fail > 0 || r.counts.cancelled > 0).map((r) => r.name);
  const lines = [
    '',
    `wall time per tier (${availableParallelism()} CPUs, load average ${loadAtStart} at the start, ${loadavg()[0].toFixed(2)} at the end):`,
    ...wall.map((w) => `  ${w.name.padEnd(30)} ${seconds(w.ms).padStart(8)}${w.note ? `  (${w.note})` : ''}`),
    `  ${'total'.padEnd(30)} ${seconds(Date.now() - t0).padStart(8)}`,
    ...results.map(
      (r) =>
        `  ${r.name}: ${r.counts ? `${r.counts.pass} passed, ${r.counts.fail} failed, ${r.counts.cancelled} cancelled, ${r.counts.skipped} skipped` : 'no summary (the runner was killed)'}, exit ${r.code}`,
    ),
  ];
  if (setupFailed) lines.push('  a tier was NOT RUN (its setup failed, see above)');
  if (incomplete.length) lines.push(`  incomplete: ${incomplete.join(', ')}`);
  lines.push(...COUNT_NAMES.map((k) => `# ${k} ${total[k]}`));
  lines.push(`${total.pass} passed, ${total.fail + total.cancelled} failed`);
  process.stdout.write(lines.join('\n') + '\n');
  if (interrupted) return interrupted;
  return failedTiers.length > 0 || setupFailed || results.length < tiers.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (interrupted) process.exit(interrupted);
    say(`driver failed: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  },
);
