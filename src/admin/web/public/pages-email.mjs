// The seed's Email pages (Domains, Email addresses, Mailboxes, Messages, Queue management, Filter, SMTP access) and
// Dashboard > Mail quota, with the seed's words, defaults and warnings. All data comes from the public admin API.
import { useState } from 'preact/hooks';
import { api, errorFor, formatBytes, when } from './api.mjs';
import { html, useLoad, Loading, Warning, Note, ErrorText, Status, SettingsForm, useConfirm } from './ui.mjs';

const BCC_WARNING = 'On some countries, enabling the Always send a copy (Bcc) can be against privacy laws.';

function TextField({ id, label, value, onInput, error, help, type = 'text', ...rest }) {
  const eid = `${id}-err`;
  return html`<div class=${`field${error ? ' invalid' : ''}`}>
    <label for=${id}>${label}</label>
    <input id=${id} type=${type} value=${value} aria-invalid=${!!error} aria-describedby=${error ? eid : help ? `${id}-help` : undefined}
      onInput=${(e) => onInput(e.target.value)} ...${rest} />
    <${ErrorText} id=${eid} text=${error} />
    ${help ? html`<p class="help" id=${`${id}-help`}>${help}</p>` : null}
  </div>`;
}

export function DomainsPage() {
  const state = useLoad(() => api('GET', '/api/domains'));
  const [form, setForm] = useState({ name: '', type: 'local', nexthop: '', bccOn: false, bcc: '', disclaimer: '' });
  const [error, setError] = useState(null);
  const [status, setStatus] = useState('');
  const [confirm, dialog] = useConfirm();
  const set = (k) => (v) => setForm({ ...form, [k]: v });
  const add = async (ev) => {
    ev.preventDefault();
    setError(null);
    const body = { name: form.name, type: form.type };
    if (form.type === 'relay') body.nexthop = form.nexthop || null;
    if (form.bccOn) body.bcc = form.bcc;
    if (form.disclaimer.trim()) body.disclaimer = form.disclaimer;
    try {
      const d = await api('POST', '/api/domains', body);
      setStatus(`Domain ${d.name} added.`);
      setForm({ name: '', type: 'local', nexthop: '', bccOn: false, bcc: '', disclaimer: '' });
      state.reload();
    } catch (err) {
      setError(err);
    }
  };
  const remove = async (d) => {
    if (!(await confirm(`Delete the domain ${d.name}? Mail already received is kept.`, 'Delete'))) return;
    try {
      await api('DELETE', `/api/domains/${encodeURIComponent(d.name)}`);
      setStatus(`Domain ${d.name} deleted; its mail is kept.`);
      state.reload();
    } catch (err) {
      setStatus(err.message);
    }
  };
  const general = error && !['name', 'type', 'nexthop', 'bcc', 'disclaimer'].some((f) => errorFor(error, f)) ? error.message : null;
  return html`<section aria-labelledby="h-domains">
    <h1 id="h-domains">Domains</h1>
    <p>Each mail domain is either delivered to local mailboxes or relayed to another mail server.</p>
    <${Note}>If a domain is deleted, email will not be deleted; any message already received is preserved.<//>
    <${Loading} state=${state}>${(data) => html`<div class="table-wrap"><table>
      <caption>Mail domains</caption>
      <thead><tr><th scope="col">Domain</th><th scope="col">Delivery</th><th scope="col">Always send a copy (Bcc)</th><th scope="col">Disclaimer</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>${data.domains.map((d) => html`<tr>
        <th scope="row">${d.name}</th>
        <td>${d.type === 'local' ? 'Deliver to local mailboxes' : `Relay to ${d.nexthop || 'its MX'}`}</td>
        <td>${d.bcc || '—'}</td><td>${d.disclaimer ? 'yes' : '—'}</td>
        <td><button type="button" class="danger" aria-label=${`Delete domain ${d.name}`} onClick=${() => remove(d)}>Delete</button></td>
      </tr>`)}</tbody></table></div>`}<//>
    <form onSubmit=${add} aria-labelledby="h-add-domain">
      <h2 id="h-add-domain">Add a domain</h2>
      <${TextField} id="domain-name" label="Domain name" value=${form.name} onInput=${set('name')} error=${errorFor(error, 'name')} required autocomplete="off" />
      <fieldset><legend>Delivery</legend>
        <label class="check"><input type="radio" name="dtype" checked=${form.type === 'local'} onChange=${() => set('type')('local')} /> Deliver to local mailboxes</label>
        <label class="check"><input type="radio" name="dtype" checked=${form.type === 'relay'} onChange=${() => set('type')('relay')} /> Relay to another server</label>
        ${form.type === 'relay'
          ? html`<${TextField} id="domain-nexthop" label="Relay host (host or host:port)" value=${form.nexthop} onInput=${set('nexthop')} error=${errorFor(error, 'nexthop')} />`
          : null}
      </fieldset>
      <div class="field"><label class="check"><input id="domain-bcc-on" type="checkbox" checked=${form.bccOn} onChange=${(e) => set('bccOn')(e.target.checked)} /> Always send a copy (Bcc)</label>
        <${Warning}>${BCC_WARNING}<//></div>
      ${form.bccOn ? html`<${TextField} id="domain-bcc" label="Bcc address" value=${form.bcc} onInput=${set('bcc')} error=${errorFor(error, 'bcc')} type="email" />` : null}
      <div class=${`field${errorFor(error, 'disclaimer') ? ' invalid' : ''}`}>
        <label for="domain-disclaimer">Disclaimer (legal notice attached to sent messages; Markdown)</label>
        <textarea id="domain-disclaimer" rows="4" value=${form.disclaimer} onInput=${(e) => set('disclaimer')(e.target.value)}></textarea>
        <${ErrorText} id="domain-disclaimer-err" text=${errorFor(error, 'disclaimer')} />
      </div>
      <${ErrorText} id="domain-error" text=${general} />
      <div class="buttons"><button type="submit" class="primary">Add domain</button></div>
      <${Status} text=${status} />
    </form>
    ${dialog}
  </section>`;
}

export function AddressesPage() {
  const state = useLoad(() => Promise.all([api('GET', '/api/addresses'), api('GET', '/api/domains')]));
  const blank = { localPart: '', allDomains: true, domains: [], kind: 'user', name: '', localNetworkOnly: false };
  const [form, setForm] = useState(blank);
  const [error, setError] = useState(null);
  const [status, setStatus] = useState('');
  const [confirm, dialog] = useConfirm();
  const set = (k) => (v) => setForm({ ...form, [k]: v });
  const add = async (ev) => {
    ev.preventDefault();
    setError(null);
    try {
      const r = await api('POST', '/api/addresses', {
        localPart: form.localPart,
        domains: form.allDomains ? 'all' : form.domains,
        target: { kind: form.kind, name: form.name },
        localNetworkOnly: form.localNetworkOnly,
      });
      setStatus(`Added ${r.addresses.map((a) => a.address).join(', ')}.`);
      setForm(blank);
      state.reload();
    } catch (err) {
      setError(err);
    }
  };
  const remove = async (a) => {
    if (!(await confirm(`Delete the address ${a.address}?`, 'Delete'))) return;
    try {
      await api('DELETE', `/api/addresses/${encodeURIComponent(a.address)}`);
      setStatus(`Address ${a.address} deleted.`);
      state.reload();
    } catch (err) {
      setStatus(err.message);
    }
  };
  const general = error && !['localPart', 'domains', 'name', 'kind'].some((f) => errorFor(error, f)) ? error.message : null;
  return html`<section aria-labelledby="h-addresses">
    <h1 id="h-addresses">Email addresses</h1>
    <p>Pseudonyms: an address on every domain or only on some, delivered to an AD user or group. Users' own addresses live in AD (mail, proxyAddresses).</p>
    <${Loading} state=${state}>${([a, d]) => html`<div class="table-wrap"><table>
      <caption>Email addresses (pseudonyms)</caption>
      <thead><tr><th scope="col">Address</th><th scope="col">Delivered to</th><th scope="col">Local network only</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>${a.addresses.map((p) => html`<tr><th scope="row">${p.domain ? p.address : `${p.localPart}@ (all domains)`}</th>
        <td>${p.target.kind} ${p.target.name}</td><td>${p.localNetworkOnly ? 'yes' : 'no'}</td>
        <td><button type="button" class="danger" aria-label=${`Delete address ${p.address}`} onClick=${() => remove(p)}>Delete</button></td></tr>`)}</tbody>
    </table></div>
    <form onSubmit=${add} aria-labelledby="h-add-address">
      <h2 id="h-add-address">Add an address</h2>
      <${TextField} id="addr-local" label="Local part (before the @)" value=${form.localPart} onInput=${set('localPart')} error=${errorFor(error, 'localPart')} required autocomplete="off" />
      <fieldset><legend>Domains</legend>
        <label class="check"><input type="checkbox" checked=${form.allDomains} onChange=${(e) => set('allDomains')(e.target.checked)} /> All domains</label>
        ${form.allDomains ? null : d.domains.filter((x) => x.type === 'local').map((x) => html`<label class="check"><input type="checkbox" checked=${form.domains.includes(x.name)}
          onChange=${(e) => set('domains')(e.target.checked ? [...form.domains, x.name] : form.domains.filter((n) => n !== x.name))} /> ${x.name}</label>`)}
        <${ErrorText} id="addr-domains-err" text=${errorFor(error, 'domains')} />
      </fieldset>
      <fieldset><legend>Delivered to</legend>
        <label for="addr-kind">Account type</label>
        <select id="addr-kind" value=${form.kind} onChange=${(e) => set('kind')(e.target.value)}><option value="user">User</option><option value="group">Group</option></select>
        <${TextField} id="addr-target" label=${form.kind === 'user' ? 'User (AD login)' : 'Group (AD name)'} value=${form.name} onInput=${set('name')} error=${errorFor(error, 'name')} required autocomplete="off" />
      </fieldset>
      <div class="field"><label class="check"><input type="checkbox" checked=${form.localNetworkOnly} onChange=${(e) => set('localNetworkOnly')(e.target.checked)} aria-describedby="addr-lno-help" /> Local network only</label>
        <p class="help" id="addr-lno-help">Blocks mail from outside the organization to this address; it still works between accounts of the system.</p></div>
      <${ErrorText} id="addr-error" text=${general} />
      <div class="buttons"><button type="submit" class="primary">Add address</button></div>
      <${Status} text=${status} />
    </form>`}<//>
    ${dialog}
  </section>`;
}

/**
 * The seed's settings pages are one form each, of the page's settings (its `page`, which is also the page's title),
 * grouped as the seed groups them; `intro()` stands above the form (a function: each render makes its own nodes).
 */
function settingsPage({ id, title, intro = () => null, ...form }) {
  return () => html`<section aria-labelledby=${`h-${id}`}>
    <h1 id=${`h-${id}`}>${title}</h1>
    ${intro()}
    <${SettingsForm} page=${title} ...${form} />
  </section>`;
}

export const MailboxesPage = settingsPage({
  id: 'mailboxes',
  title: 'Mailboxes',
  groups: [
    { title: 'Access protocols', keys: ['mailbox.imap', 'mailbox.pop3', 'mailbox.allowUnencrypted'] },
    { title: 'Disk space', keys: ['mailbox.quotaMB'] },
    { title: 'Spam messages', keys: ['mailbox.moveSpamToJunk', 'mailbox.spamRetentionDays'] },
    { title: 'Master user', keys: ['mailbox.masterUser'] },
  ],
  warnings: { 'mailbox.allowUnencrypted': 'Do not allow unencrypted connections on production environments!' },
});

export const MessagesPage = settingsPage({
  id: 'messages',
  title: 'Messages',
  groups: [
    { title: 'Queue', keys: ['queue.maxMessageSizeMB', 'queue.lifetimeHours'] },
    { title: 'Hidden copy', keys: ['queue.alwaysBcc'] },
    { title: 'Smarthost', keys: ['smarthost.enabled', 'smarthost.host', 'smarthost.port', 'smarthost.username', 'smarthost.password', 'smarthost.tls', 'smarthost.caFile', 'smarthost.verify'] },
  ],
  sliders: { 'queue.maxMessageSizeMB': { min: 1, max: 100 }, 'queue.lifetimeHours': { min: 1, max: 336 } },
  warnings: {
    'queue.alwaysBcc': BCC_WARNING,
    'smarthost.enabled': 'Sending through a smarthost is generally not recommended. It might be used only if the server is temporarily blacklisted, or normal SMTP access is restricted by the ISP.',
  },
});

export const FilterPage = settingsPage({
  id: 'filter',
  title: 'Filter',
  groups: [
    { title: 'Attachments', keys: ['filter.attachments.executables', 'filter.attachments.archives', 'filter.attachments.custom', 'filter.attachments.officeAsArchive'] },
    { title: 'Antivirus', keys: ['filter.antivirus', 'filter.antivirus.action', 'filter.antivirus.onFailure'] },
    { title: 'Anti-spam', keys: ['filter.spam', 'filter.spam.threshold', 'filter.spam.denyThreshold', 'filter.spam.subjectPrefix', 'filter.spam.maxScanSizeKB', 'filter.spam.onFailure', 'filter.dnsbl.zones', 'filter.dnsbl.onFailure'] },
    { title: 'Rules by mail address', keys: ['filter.lists.allowFrom', 'filter.lists.allowTo', 'filter.lists.blockFrom'] },
  ],
  sliders: { 'filter.spam.threshold': { min: -10, max: 30, step: 0.1 }, 'filter.spam.denyThreshold': { min: -10, max: 50, step: 0.1 } },
  warnings: {
    'filter.attachments.archives': 'The system recognizes file types by looking at their contents: MS Word (docx) and OpenOffice (odt) files may be blocked because they are also zip archives.',
    'filter.lists.allowFrom': 'Antivirus checks are enforced despite whitelist settings.',
  },
});

export const SmtpAccessPage = settingsPage({
  id: 'smtp',
  title: 'SMTP access',
  intro: () => html`<p>The default policy: clients send on the submission port (587) with encryption and authentication. This page makes exceptions for legacy environments.</p>
    <${Warning}>Do not change the default policy on new environments!<//>`,
  groups: [
    { title: 'Exceptions', keys: ['smtp.relayFrom', 'smtp.trustedNetworks'] },
    { title: 'Advanced options', keys: ['smtp.authOnPort25', 'smtp.senderMustMatchLogin', 'smtp.heloHost', 'smtp.rejectInvalidHelo', 'smtp.masterUserAuth'] },
    { title: 'Send limits', keys: ['smtp.sendLimit.messagesPerHour', 'smtp.sendLimit.recipientsPerHour', 'smtp.sendLimit.ipMessagesPerHour', 'smtp.sendLimit.ipRecipientsPerHour'] },
  ],
});

export function QueuePage() {
  const [q, setQ] = useState({ from: '', to: '' });
  const [applied, setApplied] = useState({ from: '', to: '' });
  const state = useLoad(() => {
    const p = new URLSearchParams();
    if (applied.from) p.set('from', applied.from);
    if (applied.to) p.set('to', applied.to);
    p.set('limit', '1000');
    return api('GET', `/api/queue?${p}`);
  }, [applied.from, applied.to]);
  const [selected, setSelected] = useState(new Set());
  const [status, setStatus] = useState('');
  const [confirm, dialog] = useConfirm();
  const ids = state.data ? state.data.messages.map((m) => m.id) : [];
  const sel = [...selected].filter((id) => ids.includes(id));
  const act = async (fn) => {
    try {
      setStatus(await fn());
    } catch (err) {
      setStatus(err.message);
    }
    setSelected(new Set());
    state.reload();
  };
  const flush = (only) =>
    act(async () => {
      const r = await api('POST', '/api/queue/flush', only ? { ids: only } : {});
      return `Delivery attempted now for ${r.flushed.length} message(s).`;
    });
  const del = (only) =>
    act(async () => {
      const r = await api('DELETE', `/api/queue?${only ? `ids=${only.join(',')}` : 'all=true'}`);
      return `Deleted ${r.deleted.length} message(s).`;
    });
  const toggle = (id, on) => {
    const s = new Set(selected);
    if (on) s.add(id);
    else s.delete(id);
    setSelected(s);
  };
  return html`<section aria-labelledby="h-queue">
    <h1 id="h-queue">Queue management</h1>
    <p>Messages waiting for delivery or relay. A message that cannot be delivered is retried until the queue message lifetime, then bounced to its sender. Deleting a message does not notify the sender.</p>
    <form class="search" role="search" onSubmit=${(e) => { e.preventDefault(); setApplied({ ...q }); }}>
      <label for="q-from">Sender</label><input id="q-from" type="search" value=${q.from} onInput=${(e) => setQ({ ...q, from: e.target.value })} />
      <label for="q-to">Recipient</label><input id="q-to" type="search" value=${q.to} onInput=${(e) => setQ({ ...q, to: e.target.value })} />
      <button type="submit">Search</button>
      <button type="button" onClick=${() => state.reload()}>Refresh</button>
    </form>
    <div class="buttons">
      <button type="button" class="primary" onClick=${() => flush()}>Attempt to send</button>
      <button type="button" disabled=${!sel.length} onClick=${() => flush(sel)}>Attempt to send selected</button>
      <button type="button" class="danger" disabled=${!sel.length} onClick=${async () => (await confirm(`Delete ${sel.length} selected message(s)? Their senders are not told.`, 'Delete selected')) && del(sel)}>Delete selected</button>
      <button type="button" class="danger" disabled=${!ids.length} onClick=${async () => (await confirm(`Delete all ${state.data.total} message(s) in the queue? Their senders are not told.`, 'Delete all')) && del()}>Delete all</button>
    </div>
    <${Status} text=${status} />
    <${Loading} state=${state}>${(data) => html`<p>${data.total} message(s) in the queue${applied.from || applied.to ? ' match the search' : ''}.</p>
      <div class="table-wrap"><table>
      <caption class="sr-only">Queued messages</caption>
      <thead><tr><th scope="col"><input type="checkbox" aria-label="Select all" checked=${ids.length > 0 && sel.length === ids.length} onChange=${(e) => setSelected(new Set(e.target.checked ? ids : []))} /></th>
        <th scope="col">Queue id</th><th scope="col">Received</th><th scope="col">Sender</th><th scope="col">Recipients</th><th scope="col">Size</th><th scope="col">Attempts</th><th scope="col">Last result</th></tr></thead>
      <tbody>${data.messages.map((m) => html`<tr>
        <td><input type="checkbox" aria-label=${`Select ${m.id}`} checked=${selected.has(m.id)} onChange=${(e) => toggle(m.id, e.target.checked)} /></td>
        <th scope="row"><code>${m.id}</code></th><td>${when(m.receivedAt)}</td><td>${m.from || '<>'}</td>
        <td>${m.recipients.filter((r) => !r.hidden).map((r) => html`<div>${r.address} <span class=${`badge ${r.state}`}>${r.state}</span></div>`)}</td>
        <td>${formatBytes(m.size)}</td><td>${m.attempts}${m.nextAttemptAt ? html`<div class="help">next ${when(m.nextAttemptAt)}</div>` : null}</td><td>${m.lastResult || ''}</td>
      </tr>`)}</tbody></table></div>`}<//>
    ${dialog}
  </section>`;
}

const pct = (u) => (u.limitBytes > 0 ? (u.usedBytes / u.limitBytes) * 100 : null);
const over = (u) => u.limitBytes > 0 && u.usedBytes > u.limitBytes;

export function QuotaPage() {
  const state = useLoad(() => api('GET', '/api/dashboard'));
  const [sort, setSort] = useState({ by: 'percent', desc: true });
  const header = (by, label) => {
    const on = sort.by === by;
    return html`<th scope="col" aria-sort=${on ? (sort.desc ? 'descending' : 'ascending') : 'none'}>
      <button type="button" class="sort" onClick=${() => setSort({ by, desc: on ? !sort.desc : by !== 'login' })}>${label}${on ? (sort.desc ? ' ▼' : ' ▲') : ''}</button></th>`;
  };
  const key = { login: (u) => u.login.toLowerCase(), used: (u) => u.usedBytes, percent: (u) => pct(u) ?? -1, messages: (u) => u.messages };
  return html`<section aria-labelledby="h-quota">
    <h1 id="h-quota">Mail quota</h1>
    <p>Mailbox usage of every user with mail, against the quota that applies to them (Email › Mailboxes, or a custom quota). Accounts over their quota come first.</p>
    <${Loading} state=${state}>${(data) => {
      const rows = [...data.quota].sort((a, b) => {
        if (over(a) !== over(b)) return over(a) ? -1 : 1;
        const x = key[sort.by](a);
        const y = key[sort.by](b);
        return (x < y ? -1 : x > y ? 1 : 0) * (sort.desc ? -1 : 1) || a.login.localeCompare(b.login);
      });
      return html`<div class="table-wrap"><table class="quota">
        <caption class="sr-only">Quota usage per user</caption>
        <thead><tr>${header('login', 'User')}${header('used', 'Used')}${header('percent', 'Usage')}${header('messages', 'Messages')}</tr></thead>
        <tbody>${rows.map((u) => {
          const p = pct(u);
          const text = u.limitBytes > 0 ? `${formatBytes(u.usedBytes)} of ${formatBytes(u.limitBytes)} (${p.toFixed(1)}%)${over(u) ? ', over quota' : ''}` : `${formatBytes(u.usedBytes)}, no quota`;
          return html`<tr class=${over(u) ? 'over' : ''}>
            <th scope="row">${u.login}${u.displayName ? html`<div class="help">${u.displayName}</div>` : null}</th>
            <td>${formatBytes(u.usedBytes)}</td>
            <td><div class="bar" role="meter" aria-valuemin="0" aria-valuemax="100" aria-valuenow=${p === null ? 0 : Math.min(100, p)} aria-valuetext=${text} aria-label=${`Quota of ${u.login}`}>
              <span style=${{ width: `${p === null ? 0 : Math.min(100, p)}%` }} class=${p === null ? '' : p >= 100 ? 'full' : p >= 80 ? 'high' : ''}></span></div>
              <div class="help">${text}</div></td>
            <td>${u.messages}</td></tr>`;
        })}</tbody></table></div>`;
    }}<//>
  </section>`;
}
