/**
 * The static configuration file (DESIGN.md §7): what an operator sets once. Defaults live here and only here;
 * the JSON Schema in schema/config.schema.json is generated from this file (`postern config schema`).
 */
import { z } from 'zod';

const cacheSchema = z
  .object({
    ttlSeconds: z.number().int().min(0).default(60).describe('How long a found entry is reused'),
    negativeTtlSeconds: z
      .number()
      .int()
      .min(0)
      .default(10)
      .describe('How long "no such address" is reused; kept short so a new AD address works quickly'),
    max: z.number().int().min(1).default(50000).describe('Most entries kept'),
    staleIfErrorSeconds: z
      .number()
      .int()
      .min(0)
      .default(3600)
      .describe('While every DC is unreachable, a found entry this recently fetched is still used'),
  })
  .strict();

export const directorySchema = z
  .object({
    type: z.enum(['ldap', 'ldif']).default('ldif').describe('ldap: Active Directory; ldif: an AD-shaped LDIF file'),
    file: z.string().optional().describe('LDIF file (type ldif); relative to the config file'),
    urls: z
      .array(z.string().regex(/^ldaps?:\/\/[^/]+\/?$/, 'an ldap:// or ldaps:// URL'))
      .min(1)
      .optional()
      .describe('Domain controllers, tried in order (failover)'),
    startTls: z.boolean().default(false).describe('Use StartTLS on ldap:// URLs (AD refuses simple binds without TLS)'),
    tls: z
      .object({
        caFile: z.string().optional().describe('PEM file of the CA that signed the DC certificates'),
        rejectUnauthorized: z.boolean().default(true),
        servername: z.string().optional().describe('Name to check in the DC certificate, when the URL uses an address'),
      })
      .strict()
      .prefault({}),
    baseDN: z.string().optional().describe('Where users and groups are searched, e.g. DC=corp,DC=example'),
    bindDN: z.string().optional().describe('Service account used for searches'),
    bindPassword: z.string().optional(),
    bindPasswordFile: z.string().optional().describe('File holding the service account password (first line)'),
    userPrincipalNameIsAddress: z.boolean().default(true).describe('userPrincipalName is also a mail address'),
    groupDelivery: z
      .enum(['distribution', 'shared'])
      .default('distribution')
      .describe('Mail-enabled groups are distribution lists or shared folders'),
    cache: cacheSchema.prefault({}),
    timeoutMs: z.number().int().min(100).default(5000).describe('Per LDAP operation'),
    connectTimeoutMs: z.number().int().min(100).default(3000),
    dcRetrySeconds: z.number().int().min(1).default(30).describe('A DC that failed is skipped this long'),
    pageSize: z.number().int().min(1).max(1000).default(500).describe('Paged search size (AD MaxPageSize is 1000)'),
  })
  .strict()
  .superRefine((d, ctx) => {
    if (d.type === 'ldif' && !d.file) {
      ctx.addIssue({ code: 'custom', path: ['file'], message: 'required when type is ldif' });
    }
    if (d.type === 'ldap') {
      for (const key of ['urls', 'baseDN', 'bindDN'] as const) {
        if (!d[key]) ctx.addIssue({ code: 'custom', path: [key], message: 'required when type is ldap' });
      }
      if (d.bindPassword === undefined && d.bindPasswordFile === undefined) {
        ctx.addIssue({ code: 'custom', path: ['bindPassword'], message: 'bindPassword or bindPasswordFile is required' });
      }
    }
  });

export const authSchema = z
  .object({
    method: z.enum(['ldap-bind', 'kerberos']).default('ldap-bind'),
    realm: z.string().optional().describe('Kerberos realm (method kerberos); the KDC comes from the system krb5.conf'),
    service: z
      .string()
      .optional()
      .describe('Kerberos service a ticket is asked for; default krbtgt/REALM'),
    failureDelayMs: z.number().int().min(0).default(2000).describe('Delay before answering a failed login'),
    failureDelayMaxMs: z.number().int().min(0).default(15000).describe('The delay doubles per failure up to this'),
    masterSeparator: z.string().min(1).max(4).default('*').describe('In "john*admin", the separator'),
    masterLogin: z.string().min(1).default('admin').describe('The master account (its password opens any mailbox)'),
  })
  .strict()
  .superRefine((a, ctx) => {
    if (a.method === 'kerberos' && !a.realm) ctx.addIssue({ code: 'custom', path: ['realm'], message: 'required when method is kerberos' });
  });

export const configSchema = z
  .object({
    hostname: z.string().optional().describe('FQDN used in greetings and Received; default: the system host name'),
    dataDir: z.string().default('./var').describe('settings.db, queue/ and mail/ live here'),
    directory: directorySchema.prefault({ type: 'ldif', file: 'fixtures/ad/corp.ldif' }),
    auth: authSchema.prefault({}),
    log: z
      .object({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info') })
      .strict()
      .prefault({}),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
export type DirectoryConfig = z.infer<typeof directorySchema>;
export type AuthConfig = z.infer<typeof authSchema>;

export function configJsonSchema(): unknown {
  return z.toJSONSchema(configSchema, { io: 'input' });
}
