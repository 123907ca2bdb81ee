// Shared pieces of the pages: htm bound to preact, a loader hook, warnings, and the settings form that every seed
// page with settings (Mailboxes, Messages, Filter, SMTP access) is made of.
import { h } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import htm from 'htm';
import { api, errorFor } from './api.mjs';

export const html = htm.bind(h);

/** Loads `fn()` on mount (and on reload()); `{ data, error, loading, reload }`. */
export function useLoad(fn, deps = []) {
  const [state, setState] = useState({ data: undefined, error: undefined, loading: true });
  const seq = useRef(0);
  const reload = useCallback(() => {
    const n = ++seq.current;
    setState((s) => ({ ...s, loading: true }));
    fn().then(
      (data) => n === seq.current && setState({ data, error: undefined, loading: false }),
      (error) => n === seq.current && setState({ data: undefined, error, loading: false }),
    );
  }, deps);
  useEffect(reload, [reload]);
  return { ...state, reload };
}

let ids = 0;
export const useId = (p = 'f') => useRef(`${p}${++ids}`).current;

export function Warning({ children }) {
  return html`<div class="warning" role="note"><strong>Warning</strong> ${children}</div>`;
}
export function Note({ children }) {
  return html`<div class="note" role="note"><strong>Note</strong> ${children}</div>`;
}
export function ErrorText({ id, text }) {
  return text ? html`<p class="field-error" id=${id} role="alert">${text}</p>` : null;
}
export function Loading({ state, children }) {
  // A 503 (AD or a daemon cannot answer now) is temporary: the page offers to ask again.
  if (state.error) {
    return html`<p class="field-error" role="alert">${state.error.message}</p>
      ${state.reload ? html`<div class="buttons"><button type="button" onClick=${() => state.reload()}>Try again</button></div>` : null}`;
  }
  if (state.data === undefined) return html`<p aria-busy="true">Loading…</p>`;
  return children(state.data);
}
export function Status({ text }) {
  return html`<p class="status" role="status" aria-live="polite">${text || ''}</p>`;
}

/** A modal confirmation (native <dialog>: focus is trapped and Escape cancels). */
export function useConfirm() {
  const ref = useRef(null);
  const [ask, setAsk] = useState(null);
  const confirm = (text, action) =>
    new Promise((resolve) => {
      setAsk({ text, action, resolve });
      setTimeout(() => ref.current && ref.current.showModal(), 0);
    });
  const close = (yes) => {
    ref.current && ref.current.close();
    if (ask) ask.resolve(yes);
    setAsk(null);
  };
  const dialog = html`<dialog ref=${ref} aria-labelledby="confirm-text" onCancel=${() => close(false)}>
    <p id="confirm-text">${ask ? ask.text : ''}</p>
    <div class="buttons">
      <button type="button" class="danger" onClick=${() => close(true)}>${ask ? ask.action : 'OK'}</button>
      <button type="button" onClick=${() => close(false)}>Cancel</button>
    </div>
  </dialog>`;
  return [confirm, dialog];
}

/** The seed's words for the settings it has; other keys show their own name. */
export const LABELS = {
  'mailbox.imap': 'IMAP',
  'mailbox.pop3': 'POP3',
  'mailbox.allowUnencrypted': 'Allow unencrypted connections',
  'mailbox.quotaMB': 'Mailbox quota (MB, 0 = unlimited)',
  'mailbox.moveSpamToJunk': 'Move to "junkmail" folder',
  'mailbox.spamRetentionDays': 'Hold for (days)',
  'mailbox.masterUser': 'Admin can log in as another user',
  'mailbox.deletedToTrash': 'Move deleted messages to Trash',
  'mailbox.deletedAccountRetentionDays': 'Keep the mailbox of a deleted account for (days)',
  'mailbox.enabledGroup': 'Mailbox only for members of group',
  'queue.maxMessageSizeMB': 'Queue message max size (MB)',
  'queue.lifetimeHours': 'Queue message lifetime (hours)',
  'queue.alwaysBcc': 'Always send a copy (Bcc)',
  'trace.retentionDays': 'Keep the message trace for (days)',
  'smarthost.enabled': 'Send using a smarthost',
  'smarthost.host': 'Smarthost host',
  'smarthost.port': 'Smarthost port',
  'smarthost.username': 'Smarthost user name',
  'smarthost.password': 'Smarthost password',
  'smarthost.tls': 'Smarthost encryption',
  'smarthost.caFile': 'Smarthost CA file',
  'smarthost.verify': 'Verify the smarthost certificate',
  'filter.attachments.executables': 'Block executable attachments',
  'filter.attachments.archives': 'Block archive attachments',
  'filter.attachments.custom': 'Block custom attachment types',
  'filter.attachments.officeAsArchive': 'Office documents count as archives',
  'filter.antivirus': 'Antivirus',
  'filter.antivirus.action': 'Infected messages',
  'filter.antivirus.onFailure': 'When ClamAV cannot answer',
  'filter.spam': 'Anti-spam',
  'filter.spam.threshold': 'Spam threshold',
  'filter.spam.denyThreshold': 'Deny message spam threshold',
  'filter.spam.subjectPrefix': 'Add a prefix to spam messages subject',
  'filter.spam.maxScanSizeKB': 'Largest message scanned for spam (KB)',
  'filter.spam.onFailure': 'When SpamAssassin cannot answer',
  'filter.lists.allowFrom': 'Allow from (rules by mail address)',
  'filter.lists.allowTo': 'Allow to (rules by mail address)',
  'filter.lists.blockFrom': 'Block from (rules by mail address)',
  'filter.dnsbl.zones': 'DNS blocklists (DNSBL)',
  'filter.dnsbl.onFailure': 'When no DNSBL answers',
  'filter.dmarc.rejectOnPolicy': 'Refuse mail failing DMARC p=reject',
  'smtp.relayFrom': 'Allow relay from IP addresses',
  'smtp.trustedNetworks': 'Local network (trusted networks)',
  'smtp.authOnPort25': 'Allow SMTP authentication on port 25',
  'smtp.masterUserAuth': 'Accept the master user on SMTP AUTH',
  'smtp.heloHost': 'HELO host name',
  'smtp.rejectInvalidHelo': 'Refuse an invalid HELO on port 25',
  'smtp.senderMustMatchLogin': 'Senders may use only their own addresses',
  'smtp.sendLimit.messagesPerHour': 'Messages per user per hour',
  'smtp.sendLimit.recipientsPerHour': 'Recipients per user per hour',
  'smtp.sendLimit.ipMessagesPerHour': 'Messages per client address per hour',
  'smtp.sendLimit.ipRecipientsPerHour': 'Recipients per client address per hour',
};

const ENUMS = {
  'smarthost.tls': ['starttls', 'tls', 'none'],
  'filter.antivirus.action': ['reject', 'discard'],
  'filter.antivirus.onFailure': ['tempfail', 'accept'],
  'filter.spam.onFailure': ['tempfail', 'accept'],
  'filter.dnsbl.onFailure': ['tempfail', 'accept'],
};

/** The API gives values, not types: the kind is read from the default (null defaults are strings or numbers). */
const NUMERIC_NULLABLE = new Set(['smarthost.port']);
function kindOf(e) {
  if (ENUMS[e.key]) return 'enum';
  if (typeof e.default === 'boolean') return 'boolean';
  if (Array.isArray(e.default)) return 'list';
  if (typeof e.default === 'number' || NUMERIC_NULLABLE.has(e.key)) return 'number';
  return 'string';
}

function toInput(e, v) {
  if (e.kind === 'list') return (v || []).join('\n');
  if (v === null || v === undefined) return '';
  if (e.secret) return '';
  return v;
}
function fromInput(e, v) {
  if (e.kind === 'list') return String(v).split(/[\s,]+/).filter(Boolean);
  // A number that is not one goes to the API as text: its message ("expected a whole number …") is shown.
  if (e.kind === 'number') return v === '' || Number.isNaN(Number(v)) ? v : Number(v);
  return v;
}

function humanHours(h) {
  const n = Number(h);
  if (!Number.isFinite(n)) return '';
  return n >= 24 ? `${Math.floor(n / 24)} days${n % 24 ? ` ${n % 24} hours` : ''}` : `${n} hours`;
}
export const SLIDER_TEXT = { 'queue.lifetimeHours': humanHours };

function SettingField({ e: entry, value, onChange, error, slider, warning }) {
  const e = { ...entry, kind: kindOf(entry) };
  const id = `set-${e.key.replace(/[^A-Za-z0-9]/g, '-')}`;
  const help = `${id}-help`;
  const err = `${id}-err`;
  const label = LABELS[e.key] || e.key;
  const described = `${help}${error ? ` ${err}` : ''}`;
  let control;
  if (e.kind === 'boolean') {
    control = html`<label class="check" for=${id}><input id=${id} type="checkbox" checked=${!!value} aria-describedby=${described} aria-invalid=${!!error}
      onChange=${(ev) => onChange(ev.target.checked)} /> ${label}</label>`;
  } else if (slider) {
    const text = SLIDER_TEXT[e.key];
    control = html`<label for=${id}>${label}</label>
      <div class="slider">
        <input id=${id} type="range" min=${slider.min} max=${slider.max} step=${slider.step || 1} value=${value} aria-describedby=${described}
          aria-valuetext=${text ? text(value) : String(value)} onInput=${(ev) => onChange(ev.target.value)} />
        <input type="number" aria-label=${`${label}, value`} min=${slider.min} max=${slider.max} step=${slider.step || 1} value=${value}
          aria-invalid=${!!error} onInput=${(ev) => onChange(ev.target.value)} />
        ${text ? html`<output for=${id}>${text(value)}</output>` : null}
      </div>`;
  } else if (ENUMS[e.key]) {
    control = html`<label for=${id}>${label}</label>
      <select id=${id} value=${value} aria-describedby=${described} onChange=${(ev) => onChange(ev.target.value)}>
        ${ENUMS[e.key].map((o) => html`<option value=${o}>${o}</option>`)}
      </select>`;
  } else if (e.kind === 'list') {
    control = html`<label for=${id}>${label}</label>
      <textarea id=${id} rows="3" value=${value} aria-describedby=${described} aria-invalid=${!!error} placeholder="one per line"
        onInput=${(ev) => onChange(ev.target.value)}></textarea>`;
  } else {
    const type = e.secret ? 'password' : e.kind === 'number' ? 'number' : 'text';
    control = html`<label for=${id}>${label}</label>
      <input id=${id} type=${type} value=${value} aria-describedby=${described} aria-invalid=${!!error} step=${e.kind === 'number' ? 'any' : undefined}
        placeholder=${e.secret && e.isSet ? '(unchanged)' : ''} autocomplete=${e.secret ? 'new-password' : 'off'} onInput=${(ev) => onChange(ev.target.value)} />`;
  }
  return html`<div class=${`field${error ? ' invalid' : ''}`} data-key=${e.key}>
    ${control}
    ${warning ? html`<${Warning}>${warning}<//>` : null}
    <${ErrorText} id=${err} text=${error} />
    <p class="help" id=${help}>${e.description}${e.isSet ? '' : ' (default)'}</p>
  </div>`;
}

/**
 * A seed page's settings: the keys of `page` from GET /api/settings?page=…, grouped as `groups` says (keys not
 * named go last), saved together with PATCH /api/settings (one transaction: rules between keys are checked on the
 * result). An error names its key: it is shown next to that field.
 */
export function SettingsForm({ page, groups = [], sliders = {}, warnings = {} }) {
  const state = useLoad(() => api('GET', `/api/settings?page=${encodeURIComponent(page)}`), [page]);
  const [edits, setEdits] = useState({});
  const [error, setError] = useState(null);
  const [status, setStatus] = useState('');
  if (!state.data) return html`<${Loading} state=${state}>${() => null}<//>`;
  const entries = state.data.settings;
  const byKey = Object.fromEntries(entries.map((e) => [e.key, e]));
  const value = (e) => (e.key in edits ? edits[e.key] : toInput({ ...e, kind: kindOf(e) }, e.value));
  const named = new Set(groups.flatMap((g) => g.keys));
  const all = [...groups, { title: 'Other settings', keys: entries.map((e) => e.key).filter((k) => !named.has(k)) }].filter((g) => g.keys.some((k) => byKey[k]));
  const save = async (ev) => {
    ev.preventDefault();
    const body = {};
    for (const [k, v] of Object.entries(edits)) body[k] = fromInput({ ...byKey[k], kind: kindOf(byKey[k]) }, v);
    if (!Object.keys(body).length) return setStatus('Nothing changed.');
    setError(null);
    setStatus('Saving…');
    try {
      await api('PATCH', '/api/settings', body);
      setEdits({});
      setStatus('Saved. The change applies now, without a restart.');
      state.reload();
    } catch (err) {
      setError(err);
      setStatus('');
    }
  };
  const general = error && !entries.some((e) => errorFor(error, e.key)) ? error.message : null;
  // noValidate: the API checks every value and its message is shown next to the field, in its own words.
  return html`<form onSubmit=${save} aria-label=${`${page} settings`} noValidate>
    ${all.map(
      (g) => html`<fieldset>
        <legend>${g.title}</legend>
        ${g.keys
          .filter((k) => byKey[k])
          .map(
            (k) => html`<${SettingField} e=${byKey[k]} value=${value(byKey[k])} slider=${sliders[k]} warning=${warnings[k]}
              error=${errorFor(error, k)} onChange=${(v) => setEdits({ ...edits, [k]: v })} />`,
          )}
      </fieldset>`,
    )}
    <${ErrorText} id=${`${page}-error`} text=${general} />
    <div class="buttons"><button type="submit" class="primary">Save</button>
      <button type="button" onClick=${() => { setEdits({}); setError(null); setStatus(''); }}>Undo changes</button></div>
    <${Status} text=${status} />
  </form>`;
}
