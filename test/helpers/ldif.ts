/** Builds small AD-shaped LDIF texts for unit tests. */
export function unicodePwd(password: string): string {
  return Buffer.from(`"${password}"`, 'utf16le').toString('base64');
}

export function user(dn: string, attrs: Record<string, string | string[]>, password?: string): string {
  const lines = [`dn: ${dn}`, 'objectClass: top', 'objectClass: person', 'objectClass: organizationalPerson', 'objectClass: user'];
  for (const [k, v] of Object.entries(attrs)) for (const x of Array.isArray(v) ? v : [v]) lines.push(`${k}: ${x}`);
  if (password !== undefined) lines.push(`unicodePwd:: ${unicodePwd(password)}`);
  return lines.join('\n');
}

export function group(dn: string, attrs: Record<string, string | string[]>): string {
  const lines = [`dn: ${dn}`, 'objectClass: top', 'objectClass: group'];
  for (const [k, v] of Object.entries(attrs)) for (const x of Array.isArray(v) ? v : [v]) lines.push(`${k}: ${x}`);
  return lines.join('\n');
}
