// Out of office (issue 15): IT sets or clears a user's automatic reply — a leaver, someone ill — with a start and an
// end date, a subject and a text, through the public admin API (GET|PUT|DELETE /api/users/{login}/out-of-office).
// It is kept apart from the user's own Sieve scripts, which it never touches; delivery answers with it once per
// sender per "days" (RFC 5230), never to lists, bulk mail, automatic replies or <>.
import { useState } from 'preact/hooks';
import { api, errorFor, when } from './api.mjs';
import { html, ErrorText, Note, Status, useConfirm } from './ui.mjs';

const EMPTY = { start: '', end: '', subject: '', text: '', days: 7 };

function Field({ id, label, error, help, children }) {
  return html`<div class=${`field${error ? ' invalid' : ''}`}>
    <label for=${id}>${label}</label>
    ${children}
    <${ErrorText} id=${`${id}-err`} text=${error} />
    ${help ? html`<p class="help" id=${`${id}-help`}>${help}</p>` : null}
  </div>`;
}

export function OutOfOfficePage() {
  const [login, setLogin] = useState('');
  const [shown, setShown] = useState(null); // { login, current: object | null }
  const [form, setForm] = useState(EMPTY);
  const [error, setError] = useState(null);
  const [status, setStatus] = useState('');
  const [confirm, dialog] = useConfirm();
  const set = (k) => (e) => setForm({ ...form, [k]: k === 'days' ? Number(e.target.value) : e.target.value });
  const attrs = (id, name) => ({
    id,
    'aria-invalid': !!errorFor(error, name),
    'aria-describedby': errorFor(error, name) ? `${id}-err` : `${id}-help`,
  });

  const show = async (ev) => {
    ev.preventDefault();
    setError(null);
    setStatus('');
    const who = login.trim();
    try {
      const current = await api('GET', `/api/users/${encodeURIComponent(who)}/out-of-office`);
      setShown({ login: who, current });
      setForm({ start: current.start || '', end: current.end || '', subject: current.subject || '', text: current.text, days: current.days });
    } catch (err) {
      if (err.status !== 404) {
        setShown(null);
        setError(err);
        return;
      }
      setShown({ login: who, current: null });
      setForm(EMPTY);
    }
  };

  const save = async (ev) => {
    ev.preventDefault();
    setError(null);
    const body = { text: form.text, days: form.days };
    if (form.start.trim()) body.start = form.start.trim();
    if (form.end.trim()) body.end = form.end.trim();
    if (form.subject.trim()) body.subject = form.subject;
    try {
      const current = await api('PUT', `/api/users/${encodeURIComponent(shown.login)}/out-of-office`, body);
      setShown({ login: shown.login, current });
      setStatus(`Out of office for ${shown.login} saved${current.active ? ': it answers now.' : ': it answers from its start date.'}`);
    } catch (err) {
      setError(err);
    }
  };

  const clear = async () => {
    if (!(await confirm(`Clear the out-of-office of ${shown.login}? No more automatic replies are sent.`, 'Clear'))) return;
    try {
      await api('DELETE', `/api/users/${encodeURIComponent(shown.login)}/out-of-office`);
      setShown({ login: shown.login, current: null });
      setForm(EMPTY);
      setStatus(`Out of office for ${shown.login} cleared.`);
    } catch (err) {
      setStatus(err.message);
    }
  };

  const fields = ['start', 'end', 'subject', 'text', 'days'];
  const general = error && !fields.some((f) => errorFor(error, f)) ? error.message : null;
  const cur = shown && shown.current;
  return html`<section aria-labelledby="h-ooo">
    <h1 id="h-ooo">Out of office</h1>
    <p>An automatic reply IT sets for a user, for example someone who has left or is ill. It does not change the
      user's own filters. Each sender is answered once per the number of days below; mailing lists, bulk mail,
      automatic replies and bounces are never answered.</p>
    <form class="inline" onSubmit=${show} aria-label="Choose a user">
      <div class="field">
        <label for="ooo-login">User name</label>
        <input id="ooo-login" value=${login} onInput=${(e) => setLogin(e.target.value)} required autocomplete="off" />
      </div>
      <div class="buttons"><button type="submit">Show</button></div>
    </form>
    ${!shown && general ? html`<p class="field-error" role="alert">${general}</p>` : null}
    ${shown
      ? html`<h2 id="h-ooo-user">${shown.login}</h2>
        <p class="ooo-state" role="status">${cur
          ? cur.active
            ? `Answering now${cur.end ? `, until ${when(cur.end)}` : ''}.`
            : `Set, not answering now${cur.start ? ` (starts ${when(cur.start)})` : ''}${cur.end ? ` (ends ${when(cur.end)})` : ''}.`
          : 'No out-of-office is set.'}</p>
        <form onSubmit=${save} aria-labelledby="h-ooo-user">
          <${Field} id="ooo-start" label="Start" error=${errorFor(error, 'start')} help="A date (2026-12-24) or a date and time; empty: now">
            <input ...${attrs('ooo-start', 'start')} value=${form.start} onInput=${set('start')} placeholder="YYYY-MM-DD" />
          <//>
          <${Field} id="ooo-end" label="End" error=${errorFor(error, 'end')} help="The last day included; empty: until cleared">
            <input ...${attrs('ooo-end', 'end')} value=${form.end} onInput=${set('end')} placeholder="YYYY-MM-DD" />
          <//>
          <${Field} id="ooo-subject" label="Subject" error=${errorFor(error, 'subject')} help='Empty: "Auto:" and the subject of the message answered'>
            <input ...${attrs('ooo-subject', 'subject')} value=${form.subject} onInput=${set('subject')} />
          <//>
          <${Field} id="ooo-text" label="Text" error=${errorFor(error, 'text')} help="The reply's text">
            <textarea ...${attrs('ooo-text', 'text')} rows="6" value=${form.text} onInput=${set('text')} required></textarea>
          <//>
          <${Field} id="ooo-days" label="Answer the same sender again after (days)" error=${errorFor(error, 'days')} help="RFC 5230 :days, 1 to 365">
            <input ...${attrs('ooo-days', 'days')} type="number" min="1" max="365" value=${form.days} onInput=${set('days')} />
          <//>
          ${general ? html`<p class="field-error" role="alert">${general}</p>` : null}
          <div class="buttons">
            <button type="submit" class="primary">Save</button>
            ${cur ? html`<button type="button" class="danger" onClick=${clear}>Clear</button>` : null}
          </div>
        </form>`
      : null}
    <${Note}>The reply is sent from the user's primary address, with Auto-Submitted: auto-replied (RFC 3834).<//>
    <${Status} text=${status} />
    ${dialog}
  </section>`;
}
