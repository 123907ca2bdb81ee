import type { Command } from 'commander';
import { join } from 'node:path';
import { EMBEDDED_HOST } from '../config/load.js';
import { EXIT } from '../lib/errors.js';
import { createServerLogger, LogFileError, type ServerLogger } from '../lib/logger.js';
import { SpoolLockedError } from '../queue/lock.js';
import { ListenerError, startServer } from '../server.js';
import type { CliContext } from './context.js';
import { userOwner } from '../store/types.js';

export function registerServeCommands(program: Command, ctx: CliContext, setCode: (c: number) => void): void {
  program
    .command('serve')
    .description('run the mail server (SMTP listeners, queue, delivery) until SIGINT/SIGTERM')
    .action(async () => {
      const config = ctx.config();
      let logger: ServerLogger;
      try {
        logger = createServerLogger({
          level: process.env.POSTERN_LOG_LEVEL ?? config.log.level,
          format: config.log.format,
          file: config.log.file,
          imapFile: config.log.imapFile,
          host: config.hostname,
        });
      } catch (err) {
        if (!(err instanceof LogFileError)) throw err;
        ctx.err(`postern: configuration error: ${err.message}`);
        return setCode(EXIT.config);
      }
      const log = logger.log;
      // logrotate moves the files and sends SIGUSR1 (postrotate: kill -USR1 $(pidof postern)), as for Dovecot.
      const reopen = () => {
        logger.reopen();
        log.info({ signal: 'SIGUSR1' }, 'log files reopened');
      };
      process.on('SIGUSR1', reopen);
      let server;
      try {
        server = await startServer(config, log, { embedded: !config.source });
      } catch (err) {
        if (!(err instanceof SpoolLockedError) && !(err instanceof ListenerError)) throw err;
        ctx.err(`postern: cannot start: ${(err as Error).message}`);
        return setCode(1);
      }
      const { settings } = server.core;
      if (!config.source && settings.listDomains().length === 0) {
        // Embedded defaults on a fresh machine: the fixture company's mail domains, so a first message can arrive.
        for (const name of ['example.com', 'example.org']) settings.addDomain({ name, type: 'local' });
      }
      const p = server.ports;
      ctx.out(`postern is running as ${server.hostname} (${config.source ?? 'embedded defaults'}), data in ${config.dataDir}`);
      for (const l of server.smtp.listeners) ctx.out(`  ${l.role.padEnd(10)} ${l.host}:${l.port}`);
      for (const role of ['imap', 'imaps', 'pop3', 'pop3s', 'managesieve'] as const) {
        const l = config.listeners[role];
        if (l !== false && p[role] !== undefined) ctx.out(`  ${role.padEnd(10)} ${l.host ?? '::'}:${p[role]}`);
      }
      if (p.admin) ctx.out(`  admin      https://127.0.0.1:${p.admin}/api (AD group ${config.admin.group} or a token)`);
      if (p.http) ctx.out(`  http       http://127.0.0.1:${p.http}/.well-known/autoconfig/mail/config-v1.1.xml (client autoconfiguration)`);
      if (p.https) ctx.out(`  https      https://127.0.0.1:${p.https}/autodiscover/autodiscover.xml (Outlook Autodiscover, autoconfig)`);
      ctx.out(`  TLS certificate: ${server.tls.source}${server.tls.selfSigned ? ' (self-signed)' : ''}`);
      ctx.out(`  directory: ${config.directory.type === 'ldif' ? `LDIF ${config.directory.file}` : config.directory.urls?.join(', ')}`);
      for (const [key, why] of server.filtersOff) ctx.out(`  ${key} is off for this run: ${why}`);
      ctx.out(`  mail domains: ${settings.listDomains().map((d) => d.name).join(', ') || '(none: postern domain add NAME)'}`);
      if (!isFqdn(server.hostname)) {
        // RFC 5321 §4.1.1.1 / §4.1.4: the greeting and EHLO name the host by its FQDN; receivers refuse or score
        // a bare name (Postfix's reject_non_fqdn_helo_hostname).
        const hint = `warning: hostname "${server.hostname}" is not a fully qualified domain name; it is used in the SMTP greeting, Received: and EHLO: set hostname in the config (e.g. hostname: mail.example.com)`;
        ctx.out(`  ${hint}`);
        log.warn({ hostname: server.hostname }, hint);
      }
      if (!config.source) {
        ctx.out(`  listening on ${EMBEDDED_HOST} only: the embedded defaults use the fixture company of fixtures/ad, whose passwords are public.`);
        ctx.out('  To listen elsewhere, run with --config FILE (listeners.<name>.host; docker/postern.example.yaml is an example).');
      }
      if (!config.source) {
        // The fixture's john.smith, placed by objectGUID as delivery will place him (issue 13).
        const john = await server.core.directory.findLogin('john.smith').catch(() => null);
        const inbox = join(server.store.maildirPath(john ? userOwner(john) : { kind: 'user', login: 'john.smith' }), 'new');
        ctx.out('');
        ctx.out('Send a first message (from another terminal):');
        if (p.smtp) ctx.out(`  swaks --server 127.0.0.1 --port ${p.smtp} --from someone@elsewhere.example --to john@example.com`);
        if (p.submission) {
          ctx.out(`  or as a user, on submission with STARTTLS and AUTH (password Corp!Passw0rd, see fixtures/ad/README.md):`);
          ctx.out(`  swaks --server 127.0.0.1 --port ${p.submission} -tls --auth-user john.smith --auth-password 'Corp!Passw0rd' --from john@example.com --to anna@example.com`);
        }
        ctx.out(`Read it: ls ${inbox}`);
        if (p.imap) ctx.out(`  or in Thunderbird/Outlook: IMAP 127.0.0.1:${p.imap} with STARTTLS, user john.smith, password Corp!Passw0rd`);
        if (p.pop3) ctx.out(`  or over POP3 with STLS: curl -k --ssl-reqd pop3://127.0.0.1:${p.pop3}/1 -u 'john.smith:Corp!Passw0rd'`);
      }
      await new Promise<void>((resolve) => {
        const stop = (sig: string) => {
          log.info({ signal: sig }, 'shutting down');
          resolve();
        };
        process.once('SIGINT', () => stop('SIGINT'));
        process.once('SIGTERM', () => stop('SIGTERM'));
      });
      await server.close();
      process.off('SIGUSR1', reopen);
      logger.close();
      setCode(0);
    });
}

/** A name with at least two labels, each a valid DNS label (RFC 1123 §2.1), not an address literal. */
export function isFqdn(name: string): boolean {
  const labels = name.replace(/\.$/, '').split('.');
  if (labels.length < 2 || /^\d+$/.test(labels.at(-1)!)) return false;
  return labels.every((l) => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(l));
}
