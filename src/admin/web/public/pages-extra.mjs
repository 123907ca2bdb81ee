// Beyond the seed: the directory as postern sees it, the message trace, orphaned mailboxes, send-limit alerts,
// an overview, and live charts of /metrics. All data comes from the public admin API and /metrics.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, formatBytes, when } from './api.mjs';
import { html, useLoad, Loading, Status, Note, useConfirm } from './ui.mjs';

export function OverviewPage() {
  const state = useLoad(() => Promise.all([api('GET', '/api/dashboard'), api('GET', '/api/directory/health')]));
  return html`<section aria-labelledby="h-overview">
    <h1 id="h-overview">Overview</h1>
    <${Loading} state=${state}>${([d, h]) => html`<div class="cards">
      <a class="card" href="#/queue"><strong>${d.queue.messages}</strong> message(s) in the queue<br /><span class="help">${d.queue.deferred} deferred, ${formatBytes(d.queue.bytes)}</span></a>
      <a class="card" href="#/directory"><strong>${h.servers.filter((s) => s.up).length}/${h.servers.length}</strong> domain controller(s) up<br /><span class="help">${h.backend}</span></a>
      <a class="card" href="#/limits"><strong>${d.sendLimits.overLimit.length}</strong> account(s) at their send limit<br /><span class="help">${d.sendLimits.alerts.length} recent alert(s)</span></a>
      <a class="card" href="#/orphaned"><strong>${d.orphanedMailboxes.length}</strong> orphaned mailbox(es)</a>
      <a class="card" href="#/quota"><strong>${d.quota.filter((u) => u.limitBytes > 0 && u.usedBytes > u.limitBytes).length}</strong> mailbox(es) over quota</a>
      <div class="card"><strong>${d.bccFailures.total}</strong> Bcc copies failed since start</div>
    </div>
    <h2>Recent refusals</h2>
    ${d.recentRejections.length ? html`<ul class="plain">${d.recentRejections.map((r) => html`<li><time>${when(r.at)}</time> ${r.listener} ${r.client}, at ${r.stage}${r.from !== undefined ? ` from <${r.from}>` : ''}${r.to ? ` to <${r.to}>` : ''}: <code>${r.reply}</code></li>`)}</ul>` : html`<p>None since the server started.</p>`}`}<//>
  </section>`;
}

export function DirectoryPage() {
  const state = useLoad(() => Promise.all([api('GET', '/api/directory/health'), api('GET', '/api/directory/users'), api('GET', '/api/directory/groups')]));
  const [status, setStatus] = useState('');
  const [filter, setFilter] = useState('');
  const flush = async () => {
    try {
      const r = await api('POST', '/api/directory/cache/flush', {});
      setStatus(`Directory cache flushed (${r.flushed} entries): the next lookups ask AD.`);
      state.reload();
    } catch (err) {
      setStatus(err.message);
    }
  };
  const f = filter.trim().toLowerCase();
  const match = (...xs) => !f || xs.flat().some((x) => x && String(x).toLowerCase().includes(f));
  return html`<section aria-labelledby="h-directory">
    <h1 id="h-directory">Directory</h1>
    <p>Users and groups as postern sees them after the AD mapping rules: only enabled accounts receive mail; addresses come from mail, otherMailbox, proxyAddresses (smtp:) and userPrincipalName.</p>
    <div class="buttons"><button type="button" onClick=${flush}>Flush the directory cache</button></div>
    <${Status} text=${status} />
    <${Loading} state=${state}>${([h, u, g]) => html`
      <h2>Domain controllers</h2>
      <div class="table-wrap"><table><caption class="sr-only">Domain controllers</caption>
        <thead><tr><th scope="col">Server</th><th scope="col">State</th><th scope="col">Change watch</th><th scope="col">Last error</th></tr></thead>
        <tbody>${h.servers.map((s) => {
          const w = h.watch && h.watch.dcs ? h.watch.dcs.find((d) => d.url === s.url) : undefined;
          return html`<tr><th scope="row">${s.url}</th><td><span class=${`badge ${s.up ? 'delivered' : 'failed'}`}>${s.up ? 'up' : 'down'}</span>${s.downUntil ? ` until ${when(s.downUntil)}` : ''}</td>
            <td>${w ? html`${w.state}${w.mechanism ? ` (${w.mechanism})` : ''}, ${w.changes} change(s)${w.lastPollAt ? `, last poll ${when(w.lastPollAt)}` : ''}` : h.watch ? JSON.stringify(h.watch).slice(0, 120) : 'not watching'}</td>
            <td>${s.lastError || (w && w.lastError) || ''}</td></tr>`;
        })}</tbody></table></div>
      <div class="search"><label for="dir-filter">Filter users and groups</label><input id="dir-filter" type="search" value=${filter} onInput=${(e) => setFilter(e.target.value)} /></div>
      <h2>Users</h2>
      <div class="table-wrap"><table><caption class="sr-only">Users and their addresses</caption>
        <thead><tr><th scope="col">Login</th><th scope="col">Addresses</th><th scope="col">Groups</th><th scope="col">State</th></tr></thead>
        <tbody>${u.users.filter((x) => match(x.login, x.displayName, x.addresses, x.groups)).map((x) => html`<tr>
          <th scope="row">${x.login}${x.displayName ? html`<div class="help">${x.displayName}</div>` : null}</th>
          <td>${x.addresses.map((a) => html`<div>${a}${a === x.primaryAddress ? ' (primary)' : ''}</div>`)}</td>
          <td>${x.groups.join(', ')}</td>
          <td>${!x.enabled ? html`<span class="badge failed">${x.expired ? 'expired' : 'disabled'}</span>` : !x.canLogin ? html`<span class="badge deferred">${x.locked ? 'locked out' : 'must change password'}</span>` : html`<span class="badge delivered">enabled</span>`}</td>
        </tr>`)}</tbody></table></div>
      <h2>Groups</h2>
      <div class="table-wrap"><table><caption class="sr-only">Groups and their members</caption>
        <thead><tr><th scope="col">Group</th><th scope="col">Addresses</th><th scope="col">Members (nested expanded)</th></tr></thead>
        <tbody>${g.groups.filter((x) => match(x.name, x.addresses, x.members)).map((x) => html`<tr>
          <th scope="row">${x.name}</th><td>${x.mailEnabled ? x.addresses.join(', ') : html`<span class="help">not mail-enabled</span>`}</td><td>${x.members.join(', ')}</td></tr>`)}</tbody></table></div>`}<//>
  </section>`;
}

function summary(e) {
  const d = e.detail || {};
  const keys = ['listener', 'client', 'user', 'stage', 'action', 'host', 'mailbox', 'folder', 'reply', 'by', 'dsnId'];
  return keys.filter((k) => d[k] !== undefined && d[k] !== null && d[k] !== '').map((k) => `${k}: ${typeof d[k] === 'object' ? JSON.stringify(d[k]) : d[k]}`).join(' · ');
}

export function TracePage() {
  const [q, setQ] = useState('');
  const [result, setResult] = useState(null);
  const [status, setStatus] = useState('');
  const search = async (ev) => {
    ev.preventDefault();
    const text = q.trim();
    if (!text) return;
    setStatus('Searching…');
    try {
      // A queue id is 16 letters and digits; anything else is looked for as sender, recipient and Message-ID.
      const queries = /^[0-9A-Za-z]{16}$/.test(text)
        ? [`id=${encodeURIComponent(text)}`]
        : [`from=${encodeURIComponent(text)}`, `to=${encodeURIComponent(text)}`, `messageId=${encodeURIComponent(text.replace(/^<|>$/g, ''))}`];
      const answers = await Promise.all(queries.map((x) => api('GET', `/api/trace?${x}`)));
      const byId = new Map();
      for (const a of answers) for (const m of a.messages) byId.set(m.queueId, m);
      const list = [...byId.values()].sort((a, b) => String(b.lastAt).localeCompare(String(a.lastAt)));
      setResult(list);
      setStatus(`${list.length} message(s) found.`);
    } catch (err) {
      setResult(null);
      setStatus(err.message);
    }
  };
  return html`<section aria-labelledby="h-trace">
    <h1 id="h-trace">Message trace</h1>
    <p>Find a message by an address (sender or recipient), its queue id or its Message-ID, and follow its path from reception to delivery.</p>
    <form class="search" role="search" onSubmit=${search}>
      <label for="trace-q">Address, queue id or Message-ID</label>
      <input id="trace-q" type="search" value=${q} onInput=${(e) => setQ(e.target.value)} required />
      <button type="submit" class="primary">Search</button>
    </form>
    <${Status} text=${status} />
    ${result ? result.map((m) => html`<article class="trace" aria-label=${`Message ${m.queueId}`}>
      <h2><code>${m.queueId}</code> ${m.from === '' ? '<> (bounce)' : m.from}</h2>
      <p class="help">To ${m.recipients.join(', ')}${m.messageId ? ` · Message-ID ${m.messageId}` : ''}</p>
      <ol class="timeline">${m.events.map((e) => html`<li class=${`ev-${e.type}`}>
        <time datetime=${e.at}>${when(e.at)}</time> <strong>${e.type}</strong>${e.rcpt ? ` ${e.rcpt}` : ''}
        <div class="help">${summary(e)}</div></li>`)}</ol>
    </article>`) : null}
  </section>`;
}

export function OrphansPage() {
  const state = useLoad(() => api('GET', '/api/mailboxes/orphaned'));
  const [status, setStatus] = useState('');
  const [confirm, dialog] = useConfirm();
  const reconcile = async () => {
    try {
      const r = await api('POST', '/api/mailboxes/reconcile', {});
      setStatus(`Reconciled with AD: ${JSON.stringify(r)}`);
      state.reload();
    } catch (err) {
      setStatus(err.message);
    }
  };
  const erase = async (m) => {
    if (!(await confirm(`Erase the mailbox of ${m.login} now? This cannot be undone.`, 'Erase'))) return;
    try {
      await api('DELETE', `/api/mailboxes/orphaned/${m.guid}`);
      setStatus(`Mailbox of ${m.login} erased.`);
      state.reload();
    } catch (err) {
      setStatus(err.message);
    }
  };
  return html`<section aria-labelledby="h-orphans">
    <h1 id="h-orphans">Orphaned mailboxes</h1>
    <p>Mailboxes of accounts gone from AD. They refuse mail and logins, and are erased after the retention period unless the account comes back with the same objectGUID.</p>
    <div class="buttons"><button type="button" onClick=${reconcile}>Reconcile with AD now</button></div>
    <${Status} text=${status} />
    <${Loading} state=${state}>${(d) => html`<p>Retention: ${d.retentionDays} day(s).</p>
      ${d.mailboxes.length ? html`<div class="table-wrap"><table><caption class="sr-only">Orphaned mailboxes</caption>
        <thead><tr><th scope="col">Login</th><th scope="col">Orphaned</th><th scope="col">Erased after</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
        <tbody>${d.mailboxes.map((m) => html`<tr><th scope="row">${m.login}<div class="help">${m.guid}</div></th><td>${when(m.orphanedAt)}</td><td>${when(m.eraseAfter)}</td>
          <td><a class="button" href=${`/api/mailboxes/orphaned/${m.guid}/export`} download>Export</a>
          <button type="button" class="danger" aria-label=${`Erase mailbox of ${m.login}`} onClick=${() => erase(m)}>Erase</button></td></tr>`)}</tbody></table></div>`
        : html`<p>No orphaned mailbox.</p>`}`}<//>
    ${dialog}
  </section>`;
}

export function LimitsPage() {
  const state = useLoad(() => api('GET', '/api/limits?all=true'));
  const [status, setStatus] = useState('');
  const reset = async (login) => {
    try {
      await api('DELETE', `/api/limits/users/${encodeURIComponent(login)}`);
      setStatus(`Counters of ${login} reset.`);
      state.reload();
    } catch (err) {
      setStatus(err.message);
    }
  };
  const usage = (rows, kind) => html`<div class="table-wrap"><table><caption class="sr-only">${kind} send usage</caption>
    <thead><tr><th scope="col">${kind}</th><th scope="col">Messages</th><th scope="col">Recipients</th><th scope="col">State</th>${kind === 'User' ? html`<th scope="col"><span class="sr-only">Actions</span></th>` : null}</tr></thead>
    <tbody>${rows.map((u) => html`<tr class=${u.overLimit ? 'over' : ''}><th scope="row">${u.name}</th>
      <td>${u.messages} / ${u.messageLimit || '∞'}</td><td>${u.recipients} / ${u.recipientLimit || '∞'}</td>
      <td>${u.overLimit ? html`<span class="badge failed">at the limit</span>` : 'ok'}${u.custom ? ' (custom limit)' : ''}</td>
      ${kind === 'User' ? html`<td><button type="button" onClick=${() => reset(u.name)} aria-label=${`Reset counters of ${u.name}`}>Reset</button></td>` : null}</tr>`)}</tbody></table></div>`;
  return html`<section aria-labelledby="h-limits">
    <h1 id="h-limits">Send limits</h1>
    <${Status} text=${status} />
    <${Loading} state=${state}>${(d) => html`<p>Usage in the last ${d.windowMinutes} minutes. Default per user: ${d.defaults.user.messagesPerHour} messages and ${d.defaults.user.recipientsPerHour} recipients an hour (Email › SMTP access).</p>
      <${Note}>An account that hits its limit is often a stolen password: check it before resetting its counters.<//>
      <h2>Alerts</h2>
      ${d.alerts.length ? html`<ul class="plain">${d.alerts.map((a) => html`<li><time>${when(a.at)}</time> ${a.kind} <strong>${a.name}</strong>: ${a.reason} ${a.count}/${a.limit} from ${a.client}</li>`)}</ul>` : html`<p>No alert.</p>`}
      <h2>Users</h2>${d.users.length ? usage(d.users, 'User') : html`<p>No authenticated sending in the window.</p>`}
      <h2>Client addresses</h2>${d.ips.length ? usage(d.ips, 'Address') : html`<p>None.</p>`}`}<//>
  </section>`;
}

/** Prometheus text format: `name{l="v",…} value` lines into [{ name, labels, value }]. */
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:\\.|[^"\\])*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}
const sum = (ms, name, pred = () => true) => ms.filter((m) => m.name === name && pred(m.labels)).reduce((n, m) => n + m.value, 0);

const POLL_MS = 5000;
const KEEP = 120;

function Chart({ title, series, data }) {
  const el = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    let gone = false;
    import('uplot').then(({ default: UPlot }) => {
      if (gone || !el.current) return;
      const width = Math.max(260, el.current.clientWidth || 600);
      const colors = ['#1565c0', '#c62828', '#2e7d32', '#ef6c00', '#6a1b9a', '#00838f'];
      plot.current = new UPlot(
        { width, height: 200, series: [{}, ...series.map((s, i) => ({ label: s, stroke: colors[i % colors.length], width: 2 }))], axes: [{}, {}], scales: { x: { time: true } } },
        data,
        el.current,
      );
    });
    return () => {
      gone = true;
      if (plot.current) plot.current.destroy();
      plot.current = null;
    };
  }, [series.join('|')]);
  useEffect(() => {
    if (plot.current) plot.current.setData(data);
  }, [data]);
  return html`<figure class="chart"><figcaption>${title}</figcaption><div ref=${el} role="img" aria-label=${`${title}: chart; the numbers are in the table below`}></div></figure>`;
}

export function MetricsPage() {
  const [samples, setSamples] = useState([]);
  const [error, setError] = useState('');
  useEffect(() => {
    let stop = false;
    let timer;
    const tick = async () => {
      try {
        const text = await api('GET', '/metrics');
        const ms = parseMetrics(text);
        const rejected = {};
        for (const m of ms) if (m.name === 'postern_smtp_rejected_total') rejected[m.labels.stage] = (rejected[m.labels.stage] || 0) + m.value;
        const s = {
          t: Date.now() / 1000,
          in: sum(ms, 'postern_smtp_messages_received_total'),
          out: sum(ms, 'postern_delivery_recipients_total', (l) => l.state === 'delivered'),
          queue: sum(ms, 'postern_queue_messages'),
          deferred: sum(ms, 'postern_queue_deferred_messages'),
          rejected,
        };
        if (!stop) setSamples((prev) => [...prev, s].slice(-KEEP));
        setError('');
      } catch (err) {
        setError(err.message);
      }
      if (!stop) timer = setTimeout(tick, POLL_MS);
    };
    tick();
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, []);
  const last = samples[samples.length - 1];
  // Counters become per-interval increases: what came in since the previous sample.
  const delta = (f) => samples.slice(1).map((s, i) => Math.max(0, f(s) - f(samples[i])));
  const t = samples.slice(1).map((s) => s.t);
  const stages = [...new Set(samples.flatMap((s) => Object.keys(s.rejected)))].sort();
  return html`<section aria-labelledby="h-metrics">
    <h1 id="h-metrics">Live metrics</h1>
    <p>From /metrics every ${POLL_MS / 1000} seconds while this page is open. Messages in and out, and refusals, are counted per interval.</p>
    ${error ? html`<p class="field-error" role="alert">${error}</p>` : null}
    ${samples.length < 2 ? html`<p aria-busy="true">Collecting the first samples…</p>` : html`<div class="charts">
      <${Chart} title="Messages in and out" series=${['received', 'delivered recipients']} data=${[t, delta((s) => s.in), delta((s) => s.out)]} />
      <${Chart} title="Refusals by reason" series=${stages.length ? stages : ['none']} data=${[t, ...(stages.length ? stages.map((st) => delta((s) => s.rejected[st] || 0)) : [t.map(() => 0)])]} />
      <${Chart} title="Queue depth" series=${['messages', 'deferred']} data=${[samples.map((s) => s.t), samples.map((s) => s.queue), samples.map((s) => s.deferred)]} />
    </div>`}
    ${last ? html`<div class="table-wrap"><table><caption>Totals now</caption><tbody>
      <tr><th scope="row">Messages received since start</th><td>${last.in}</td></tr>
      <tr><th scope="row">Recipients delivered since start</th><td>${last.out}</td></tr>
      <tr><th scope="row">Messages in the queue</th><td>${last.queue}</td></tr>
      ${Object.entries(last.rejected).map(([k, v]) => html`<tr><th scope="row">Refused at ${k}</th><td>${v}</td></tr>`)}
    </tbody></table></div>` : null}
  </section>`;
}
