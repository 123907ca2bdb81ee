/**
 * Runs `postern serve` as a real child process (`node bin/postern.js --config FILE serve`), as an admin runs it, for
 * tests that must kill the server hard (SIGKILL) and start it again on the same dataDir.
 *
 *   const srv = await startProcessServer(configFile);   // resolves once the listener lines are printed
 *   srv.ports.smtp                                      // listeners configured with port 0 print the bound port
 *   await srv.kill('SIGKILL');                          // resolves when the process is gone
 *   await srv.stop();                                   // SIGTERM (clean shutdown), SIGKILL if it hangs
 *
 * stdout (the banner) and stderr (pino's JSON log lines, POSTERN_LOG_LEVEL=info by default) are captured; `logs()`
 * parses the JSON lines. The server runs in its own process group through test/harness/children.ts: it is killed
 * when the test that started it ends (pass `owner: t`), at the latest when its test file ends, also after a timeout
 * or a cancellation, so a failed test never leaves a server behind or keeps the run alive.
 */
import { type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { spawnChild, type ChildOwner } from '../harness/children.ts';
import { ROOT } from './cli.ts';

export interface ProcessServerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ProcessServer {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Bound port by listener role (smtp, submission, smtps), parsed from the banner. */
  readonly ports: Record<string, number>;
  /** Bound address by listener role. */
  readonly hosts: Record<string, string>;
  /** Milliseconds from spawn to the banner's last line. */
  readonly startMs: number;
  /** Everything printed so far. */
  stdout(): string;
  stderr(): string;
  /** The JSON log lines on stderr, parsed (other lines are skipped). */
  logs(): Record<string, unknown>[];
  /** Resolves when the process has exited. */
  readonly exited: Promise<ProcessServerExit>;
  /** Sends `signal` (default SIGKILL) and resolves when the process is gone. */
  kill(signal?: NodeJS.Signals): Promise<ProcessServerExit>;
  /** SIGTERM, then SIGKILL after `graceMs` (default 5000) if it has not exited. */
  stop(graceMs?: number): Promise<ProcessServerExit>;
}

export interface ProcessServerOptions {
  env?: NodeJS.ProcessEnv;
  /** POSTERN_LOG_LEVEL for the child; default info. */
  logLevel?: string;
  /** How long to wait for the banner; default 30 s (about 1 s on a quiet machine, several under load). */
  timeoutMs?: number;
  /** The test whose end kills the server (t); without it, the end of the test file does. */
  owner?: ChildOwner;
}

/** `  smtp       127.0.0.1:2525` (src/cli/serve.ts): role, then host:port, the port after the last colon. */
const LISTENER_LINE = /^ {2}(smtp|submission|smtps|imap|imaps|pop3|pop3s|managesieve|admin|http)\s+(\S+):(\d+)$/;
/** serve prints the listeners, then the certificate, directory and mail domains: the last line of the banner. */
const BANNER_END = /^ {2}mail domains: /m;

export function startProcessServer(configFile: string, opts: ProcessServerOptions = {}): Promise<ProcessServer> {
  const t0 = Date.now();
  const proc = spawnChild(process.execPath, [join(ROOT, 'bin/postern.js'), '--config', configFile, 'serve'], {
    name: `postern serve (${configFile})`,
    owner: opts.owner,
    cwd: ROOT,
    env: { ...process.env, POSTERN_LOG_LEVEL: opts.logLevel ?? 'info', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const child = proc.process;
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = proc.exited;
  const kill = (signal: NodeJS.Signals = 'SIGKILL'): Promise<ProcessServerExit> => proc.kill(signal);

  return new Promise<ProcessServer>((resolve, reject) => {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const fail = (why: string) => {
      cleanup();
      void kill('SIGKILL');
      reject(new Error(`postern serve (${configFile}) ${why}\n--- stdout\n${out}\n--- stderr\n${err.slice(-4000)}`));
    };
    const timer = setTimeout(() => fail(`printed no listener lines within ${timeoutMs} ms`), timeoutMs);
    const onData = () => {
      if (!BANNER_END.test(out)) return;
      cleanup();
      const ports: Record<string, number> = {};
      const hosts: Record<string, string> = {};
      for (const line of out.split('\n')) {
        const m = LISTENER_LINE.exec(line.trimEnd());
        if (m) {
          ports[m[1]] = Number(m[3]);
          hosts[m[1]] = m[2];
        }
      }
      const startMs = Date.now() - t0;
      resolve({
        pid: child.pid!,
        child,
        ports,
        hosts,
        startMs,
        stdout: () => out,
        stderr: () => err,
        logs: () =>
          err.split('\n').flatMap((l) => {
            if (!l.startsWith('{')) return [];
            try {
              return [JSON.parse(l) as Record<string, unknown>];
            } catch {
              return [];
            }
          }),
        exited,
        kill,
        stop: (graceMs = 5000) => proc.stop(graceMs),
      });
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => fail(`exited before listening (code ${code}, signal ${signal})`);
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
    };
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
    child.once('error', (e) => fail(`could not be started: ${e.message}`));
  });
}
